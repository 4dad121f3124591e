package api_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// filterItems is the table the filter tests query: a name, a state with a
// fixed set of choices, an optional worker and a number.
var filterItems = []struct {
	name, state string
	worker      *string
	n           int
}{
	{"alpha", "waiting", nil, 1},
	{"Alpha-2", "running", ptr("w1"), 2},
	{"beta_50%", "completed", ptr("w1"), 3},
	{"gamma.file", "failed", ptr("w2"), 4},
	{"ALPHABET", "completed", nil, 5},
}

func ptr(s string) *string { return &s }

func filterSet() *api.FilterSet {
	return &api.FilterSet{
		DefaultOrder: "n",
		Ordering:     map[string]string{"name": "name", "n": "n"},
		Filters: []api.Filter{
			{Name: "name", Column: "name", Kind: api.Text},
			{Name: "state", Column: "state", Kind: api.Exact, Lookups: []string{"", "in", "ne"},
				Choices: []string{"waiting", "running", "completed", "failed"}},
			{Name: "worker", Column: "worker", Kind: api.Exact, Lookups: []string{"", "in", "isnull"}},
			{Name: "n", Column: "n", Kind: api.Int},
		},
	}
}

// TestFiltersOnRealDatabases runs Pulp's lookup families (the name family
// with regex, choices, ne, isnull, numbers, ordering) as SQL on SQLite and
// PostgreSQL, so both backends give the same, case-correct answers.
func TestFiltersOnRealDatabases(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if _, err := s.Exec(ctx, `CREATE TABLE filter_items (name TEXT NOT NULL, state TEXT NOT NULL, worker TEXT, n INTEGER NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		for _, it := range filterItems {
			if _, err := s.Exec(ctx, `INSERT INTO filter_items (name, state, worker, n) VALUES ($1, $2, $3, $4)`, it.name, it.state, it.worker, it.n); err != nil {
				t.Fatal(err)
			}
		}
		run := func(query string) ([]string, error) {
			t.Helper()
			vals, err := url.ParseQuery(query)
			if err != nil {
				t.Fatal(err)
			}
			q := &api.Query{Regex: s.RegexMatch}
			order, err := filterSet().Build(vals, q)
			if err != nil {
				return nil, err
			}
			where, args := q.SQL()
			rows, err := s.Query(ctx, `SELECT name FROM filter_items`+where+` ORDER BY `+order, args...)
			if err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			defer rows.Close()
			var names []string
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				names = append(names, n)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return names, nil
		}
		for _, tc := range []struct {
			query string
			want  string // comma-separated names in result order
		}{
			{"", "alpha,Alpha-2,beta_50%,gamma.file,ALPHABET"},
			{"name=alpha", "alpha"},
			{"name__exact=Alpha-2", "Alpha-2"},
			{"name__iexact=ALPHA", "alpha"},
			{"name__contains=lph", "alpha,Alpha-2"},
			{"name__contains=LPH", "ALPHABET"},
			{"name__icontains=LPH", "alpha,Alpha-2,ALPHABET"},
			{"name__contains=_50%25", "beta_50%"},
			{"name__contains=e_a", ""},
			{"name__startswith=Alpha", "Alpha-2"},
			{"name__istartswith=alpha", "alpha,Alpha-2,ALPHABET"},
			{"name__endswith=BET", "ALPHABET"},
			{"name__endswith=bet", ""},
			{"name__iendswith=bet", "ALPHABET"},
			{"name__in=alpha,gamma.file,nope", "alpha,gamma.file"},
			{"name__regex=^[a-z]%2B$", "alpha"},
			{"name__regex=a.f", "gamma.file"},
			{"name__iregex=^alpha", "alpha,Alpha-2,ALPHABET"},
			{"name__regex=^alpha", "alpha"},
			{"state=completed", "beta_50%,ALPHABET"},
			{"state__in=waiting,failed", "alpha,gamma.file"},
			{"state__ne=completed", "alpha,Alpha-2,gamma.file"},
			{"worker=w1", "Alpha-2,beta_50%"},
			{"worker__isnull=true", "alpha,ALPHABET"},
			{"worker__isnull=false&state__ne=running", "beta_50%,gamma.file"},
			{"n__gte=2&n__lt=4", "Alpha-2,beta_50%"},
			{"n__range=4,5", "gamma.file,ALPHABET"},
			{"n__in=1,5", "alpha,ALPHABET"},
			{"ordering=-n&state=completed", "ALPHABET,beta_50%"},
			{"ordering=name&name__istartswith=alpha", "ALPHABET,Alpha-2,alpha"},
		} {
			got, err := run(tc.query)
			if err != nil {
				t.Errorf("%s: %v", tc.query, err)
				continue
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("%s: got %v, want %s", tc.query, got, tc.want)
			}
		}
		for _, tc := range []struct{ query, field string }{
			{"name__regex=(", "name__regex"},
			{"state=bogus", "state"},
			{"state__in=waiting,bogus", "state__in"},
			{"worker__isnull=maybe", "worker__isnull"},
			{"n__gt=x", "n__gt"},
			{"ordering=nope", "ordering"},
		} {
			_, err := run(tc.query)
			fe, ok := err.(api.FieldErrors)
			if !ok || len(fe[tc.field]) == 0 {
				t.Errorf("%s: want a 400 on %s, got %v", tc.query, tc.field, err)
			}
		}
		if !slices.Equal(filterSet().Filters[1].Choices, []string{"waiting", "running", "completed", "failed"}) {
			t.Fatal("choices changed")
		}
	})
}
