package api

import (
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Pagination defaults, as Pulp's LimitOffsetPagination.
const (
	DefaultLimit = 100
	MaxLimit     = 5000
)

// PageResponse is the paginated list body.
type PageResponse struct {
	Count    int64   `json:"count"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
	Results  any     `json:"results"`
}

// Paging reads limit and offset.
func (c *Ctx) Paging() (limit, offset int, err error) {
	q := c.R.URL.Query()
	limit = DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, FieldError("limit", "A valid integer is required.")
		}
		if n > 0 {
			limit = min(n, MaxLimit)
		}
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, FieldError("offset", "A valid integer is required.")
		}
		offset = n
	}
	return limit, offset, nil
}

// Page builds the list body with absolute next/previous links.
func (c *Ctx) Page(count int64, limit, offset int, results any) *PageResponse {
	// An empty page lists [] rather than null.
	if v := reflect.ValueOf(results); results == nil || (v.Kind() == reflect.Slice && v.IsNil()) {
		results = []any{}
	}
	p := &PageResponse{Count: count, Results: results}
	link := func(off int) *string {
		q := c.R.URL.Query()
		q.Set("limit", strconv.Itoa(limit))
		if off <= 0 {
			q.Del("offset")
		} else {
			q.Set("offset", strconv.Itoa(off))
		}
		s := c.AbsoluteURL(c.R.URL.Path + "?" + q.Encode())
		return &s
	}
	if int64(offset+limit) < count {
		p.Next = link(offset + limit)
	}
	if offset > 0 {
		p.Previous = link(offset - limit)
	}
	return p
}

// Query accumulates SQL conditions with numbered placeholders.
type Query struct {
	conds []string
	args  []any
	// Regex renders a regular-expression match for the backend in use.
	Regex func(col, param string, ci bool) string
}

// Arg binds v and returns its placeholder.
func (q *Query) Arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// Where adds a condition; each ? in cond is bound to the next arg.
func (q *Query) Where(cond string, args ...any) {
	var b strings.Builder
	i := 0
	for _, r := range cond {
		if r == '?' && i < len(args) {
			b.WriteString(q.Arg(args[i]))
			i++
			continue
		}
		b.WriteRune(r)
	}
	q.conds = append(q.conds, "("+b.String()+")")
}

// SQL returns " WHERE …" (or "") and the bound arguments.
func (q *Query) SQL() (string, []any) {
	if len(q.conds) == 0 {
		return "", q.args
	}
	return " WHERE " + strings.Join(q.conds, " AND "), q.args
}

// Args returns the bound arguments so far.
func (q *Query) Args() []any { return q.args }

// Empty reports whether no condition was added.
func (q *Query) Empty() bool { return len(q.conds) == 0 }

// FilterKind selects the lookups a filter accepts.
type FilterKind int

// Filter kinds.
const (
	Text   FilterKind = iota // Pulp's name family
	Exact                    // exact value and __in
	Int                      // numbers with comparisons
	Time                     // datetimes with comparisons
	Bool                     // true/false
	Custom                   // Apply handles the lookups in Lookups
)

// TextLookups is Pulp's lookup family for names and paths.
var TextLookups = []string{"", "exact", "iexact", "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith", "in", "regex", "iregex"}

var (
	intLookups  = []string{"", "exact", "lt", "lte", "gt", "gte", "range", "in"}
	timeLookups = []string{"", "exact", "lt", "lte", "gt", "gte", "range", "isnull"}
)

// Filter maps a query parameter family onto a SQL column.
type Filter struct {
	Name    string
	Column  string
	Kind    FilterKind
	Lookups []string // for Exact and Custom kinds
	// Choices, when set, are the only values an Exact or Text filter
	// accepts; anything else is a 400, as Pulp's ChoiceFilter.
	Choices []string
	Doc     string
	// Apply handles a Custom filter's lookup and value.
	Apply func(q *Query, lookup, value string) error
}

func (f *Filter) lookups() []string {
	switch f.Kind {
	case Text:
		return TextLookups
	case Int:
		return intLookups
	case Time:
		return timeLookups
	case Bool:
		return []string{""}
	case Exact:
		if f.Lookups == nil {
			return []string{"", "in"}
		}
	}
	return f.Lookups
}

// FilterSet is the filters and orderings a list offers.
type FilterSet struct {
	Filters []Filter
	// Ordering maps ordering names to SQL expressions.
	Ordering map[string]string
	// DefaultOrder is the ORDER BY used when none is requested.
	DefaultOrder string
	// Tiebreak is appended to any ordering for a stable page order.
	Tiebreak string
}

// Params documents the filters for the OpenAPI document.
func (fs *FilterSet) Params() []Param {
	ps := []Param{
		{Name: "limit", Type: "integer", Description: "Number of results to return per page."},
		{Name: "offset", Type: "integer", Description: "The initial index from which to return the results."},
		{Name: "fields", Type: "array", Description: "A list of fields to include in the response."},
		{Name: "exclude_fields", Type: "array", Description: "A list of fields to exclude from the response."},
	}
	if len(fs.Ordering) > 0 {
		var enum []string
		for k := range fs.Ordering {
			enum = append(enum, k, "-"+k)
		}
		ps = append(ps, Param{Name: "ordering", Type: "array", Description: "Ordering", Enum: sortedStrings(enum)})
	}
	for i := range fs.Filters {
		f := &fs.Filters[i]
		for _, l := range f.lookups() {
			name := f.Name
			if l != "" {
				name += "__" + l
			}
			p := Param{Name: name, Type: "string", Description: f.Doc}
			switch {
			case l == "in" || l == "range":
				p.Type = "array"
			case f.Kind == Int && l != "isnull":
				p.Type = "integer"
			case f.Kind == Bool || l == "isnull":
				p.Type = "boolean"
			case f.Kind == Time:
				p.Format = "date-time"
			}
			if len(f.Choices) > 0 && p.Type != "boolean" {
				p.Enum = f.Choices
			}
			ps = append(ps, p)
		}
	}
	return ps
}

// Build turns the request's query parameters into conditions and an ORDER BY.
func (fs *FilterSet) Build(vals url.Values, q *Query) (orderBy string, err error) {
	fe := FieldErrors{}
	for i := range fs.Filters {
		f := &fs.Filters[i]
		for _, l := range f.lookups() {
			name := f.Name
			if l != "" {
				name += "__" + l
			}
			for _, v := range vals[name] {
				if e := f.apply(q, l, v); e != "" {
					fe.Add(name, e)
				}
			}
		}
	}
	if len(fe) > 0 {
		return "", fe
	}
	orderBy = fs.DefaultOrder
	if o := vals.Get("ordering"); o != "" && len(fs.Ordering) > 0 {
		var parts []string
		for _, k := range strings.Split(o, ",") {
			desc := strings.HasPrefix(k, "-")
			col, ok := fs.Ordering[strings.TrimPrefix(k, "-")]
			if !ok {
				return "", FieldError("ordering", fmt.Sprintf("Select a valid choice. %s is not one of the available choices.", k))
			}
			if desc {
				col += " DESC"
			}
			parts = append(parts, col)
		}
		orderBy = strings.Join(parts, ", ")
	}
	if fs.Tiebreak != "" {
		if orderBy != "" {
			orderBy += ", "
		}
		orderBy += fs.Tiebreak
	}
	return orderBy, nil
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func (f *Filter) apply(q *Query, lookup, v string) string {
	col := f.Column
	switch f.Kind {
	case Custom:
		if err := f.Apply(q, lookup, v); err != nil {
			if fe, ok := err.(FieldErrors); ok {
				for _, m := range fe {
					return strings.Join(m, " ")
				}
			}
			return err.Error()
		}
		return ""
	case Text, Exact:
		if len(f.Choices) > 0 && lookup != "isnull" {
			vals := []string{v}
			if lookup == "in" {
				vals = splitList(v)
			}
			for _, x := range vals {
				if !slices.Contains(f.Choices, x) {
					return fmt.Sprintf("Select a valid choice. %s is not one of the available choices.", x)
				}
			}
		}
		switch lookup {
		case "", "exact":
			q.Where(col+" = ?", v)
		case "ne":
			q.Where(col+" <> ?", v)
		case "isnull":
			return IsNull(q, col, v)
		case "iexact":
			q.Where("LOWER("+col+") = LOWER(?)", v)
		case "contains":
			q.Where(col+` LIKE ? ESCAPE '\'`, "%"+likeEscape(v)+"%")
		case "icontains":
			q.Where("LOWER("+col+`) LIKE LOWER(?) ESCAPE '\'`, "%"+likeEscape(v)+"%")
		case "startswith":
			q.Where(col+` LIKE ? ESCAPE '\'`, likeEscape(v)+"%")
		case "istartswith":
			q.Where("LOWER("+col+`) LIKE LOWER(?) ESCAPE '\'`, likeEscape(v)+"%")
		case "endswith":
			q.Where(col+` LIKE ? ESCAPE '\'`, "%"+likeEscape(v))
		case "iendswith":
			q.Where("LOWER("+col+`) LIKE LOWER(?) ESCAPE '\'`, "%"+likeEscape(v))
		case "in":
			items := splitList(v)
			if len(items) == 0 {
				q.Where("1 = 0")
				return ""
			}
			ph := make([]string, len(items))
			for i, it := range items {
				ph[i] = q.Arg(it)
			}
			q.Where(col + " IN (" + strings.Join(ph, ", ") + ")")
		case "regex", "iregex":
			if _, err := regexp.Compile(v); err != nil {
				return "Enter a valid regular expression."
			}
			q.Where(q.Regex(col, q.Arg(v), lookup == "iregex"))
		}
	case Bool:
		b, ok := parseBool(v)
		if !ok {
			return "Must be a valid boolean."
		}
		q.Where(col+" = ?", b)
	case Int:
		return applyCompare(q, col, lookup, v, func(s string) (any, bool) {
			n, err := strconv.ParseInt(s, 10, 64)
			return n, err == nil
		}, "Enter a number.")
	case Time:
		if lookup == "isnull" {
			return IsNull(q, col, v)
		}
		return applyCompare(q, col, lookup, v, func(s string) (any, bool) {
			t, ok := ParseTime(s)
			return t.UnixMicro(), ok
		}, "Enter a valid date/time.")
	}
	return ""
}

// IsNull applies an __isnull lookup on col; it returns the field message
// for a value that is not a boolean, "" otherwise.
func IsNull(q *Query, col, v string) string {
	b, ok := parseBool(v)
	if !ok {
		return "Must be a valid boolean."
	}
	if b {
		q.Where(col + " IS NULL")
	} else {
		q.Where(col + " IS NOT NULL")
	}
	return ""
}

func applyCompare(q *Query, col, lookup, v string, parse func(string) (any, bool), msg string) string {
	switch lookup {
	case "range":
		parts := splitList(v)
		if len(parts) != 2 {
			return "Range query expects two values."
		}
		a, ok1 := parse(parts[0])
		b, ok2 := parse(parts[1])
		if !ok1 || !ok2 {
			return msg
		}
		q.Where(col+" >= ? AND "+col+" <= ?", a, b)
		return ""
	case "in":
		var ph []string
		for _, it := range splitList(v) {
			x, ok := parse(it)
			if !ok {
				return msg
			}
			ph = append(ph, q.Arg(x))
		}
		if len(ph) == 0 {
			q.Where("1 = 0")
			return ""
		}
		q.Where(col + " IN (" + strings.Join(ph, ", ") + ")")
		return ""
	}
	x, ok := parse(v)
	if !ok {
		return msg
	}
	op := map[string]string{"": "=", "exact": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[lookup]
	q.Where(col+" "+op+" ?", x)
	return ""
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ParseTime accepts the ISO 8601 forms clients send.
func ParseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
