package coreapi

import (
	"fmt"
	"strings"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/store"
)

// RemotesPath is the generic list of remotes of every type.
const RemotesPath = api.Root + "remotes/"

// HiddenField tells whether a write-only field holds a value, so clients
// know whether they would overwrite one.
type HiddenField struct {
	Name  string `json:"name" api:"required"`
	IsSet bool   `json:"is_set" api:"required"`
}

// RemoteResponse holds the fields every remote type shows. Plugins embed
// it in their own response types. Secrets never appear; hidden_fields
// tells whether each is set.
type RemoteResponse struct {
	api.Base
	Name                string              `json:"name" api:"required" doc:"Unique name of the remote."`
	URL                 string              `json:"url" api:"required" doc:"Where content comes from (http, https, or file below an allowed import path)."`
	PulpLabels          map[string]string   `json:"pulp_labels"`
	Policy              string              `json:"policy" enum:"immediate,on_demand,streamed" doc:"When content is downloaded: immediate (at sync), on_demand (when first requested, then kept) or streamed (when requested, never kept)."`
	HiddenFields        []HiddenField       `json:"hidden_fields" api:"readonly" doc:"The write-only fields and whether each holds a value."`
	CACert              *string             `json:"ca_cert" api:"nullable" doc:"PEM certificates trusted, besides the system ones, to verify the server."`
	ClientCert          *string             `json:"client_cert" api:"nullable" doc:"PEM certificate presented to the server (mutual TLS)."`
	TLSValidation       bool                `json:"tls_validation" doc:"Whether the server certificate is verified."`
	ProxyURL            *string             `json:"proxy_url" api:"nullable" doc:"Proxy for every request, as scheme://host:port (no credentials)."`
	MaxRetries          *int64              `json:"max_retries" api:"nullable" doc:"Retries after a failed download attempt; null or 0 means 3."`
	TotalTimeout        *float64            `json:"total_timeout" api:"nullable" min:"0" doc:"Seconds one download attempt may take; null or 0 means 300."`
	ConnectTimeout      *float64            `json:"connect_timeout" api:"nullable" min:"0" doc:"Seconds for connecting, TLS handshake included; null or 0 means 30."`
	SockConnectTimeout  *float64            `json:"sock_connect_timeout" api:"nullable" min:"0" doc:"Seconds for connecting, TLS handshake included; null or 0 means 30."`
	SockReadTimeout     *float64            `json:"sock_read_timeout" api:"nullable" min:"0" doc:"Seconds to wait for each read from the server; null or 0 means no limit."`
	Headers             []map[string]string `json:"headers" doc:"Headers sent on every request, as a list of single-key objects."`
	DownloadConcurrency *int64              `json:"download_concurrency" api:"nullable" min:"1" doc:"Downloads running at once; null means 10."`
	RateLimit           *int64              `json:"rate_limit" api:"nullable" doc:"Requests per second at most; null or 0 means no limit."`
}

// GenericRemoteResponse is a remote of any type, in remotes_list.
type GenericRemoteResponse struct {
	RemoteResponse
}

// SchemaName names the component as Pulp does.
func (GenericRemoteResponse) SchemaName() string { return "GenericRemoteResponse" }

// RemoteCollection returns the collection path of a remote type:
// "file.file" → /pulp/api/v3/remotes/file/file/.
func RemoteCollection(pulpType string) string {
	app, typ, _ := strings.Cut(pulpType, ".")
	return RemotesPath + app + "/" + typ + "/"
}

// RemoteHref returns the typed detail href of a remote.
func RemoteHref(pulpType, id string) string { return api.Href(RemoteCollection(pulpType), id) }

// RemotePRNType returns the PRN model label of a remote type, as Pulp
// names its models <App><Type>Remote: "file.file" → "file.fileremote".
func RemotePRNType(pulpType string) string {
	app, typ, _ := strings.Cut(pulpType, ".")
	if typ == app {
		return app + "." + app + "remote"
	}
	return app + "." + app + typ + "remote"
}

// RemotePRN returns the PRN of a remote, which is also its lock name.
func RemotePRN(r *store.Remote) string { return "prn:" + RemotePRNType(r.PulpType) + ":" + r.ID }

// Write-only remote fields in Pulp's field order.
var remoteSecrets = []string{"client_key", "proxy_username", "proxy_password", "username", "password"}

// NewRemoteResponse renders a remote row.
func NewRemoteResponse(r *store.Remote) RemoteResponse {
	isSet := func(p *string) bool { return p != nil && *p != "" }
	secrets := map[string]bool{
		"client_key": isSet(r.ClientKey), "proxy_username": isSet(r.ProxyUsername), "proxy_password": isSet(r.ProxyPassword),
		"username": isSet(r.Username), "password": isSet(r.Password),
	}
	hidden := make([]HiddenField, len(remoteSecrets))
	for i, name := range remoteSecrets {
		hidden[i] = HiddenField{Name: name, IsSet: secrets[name]}
	}
	labels := r.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	headers := r.Headers
	if headers == nil {
		headers = []map[string]string{}
	}
	return RemoteResponse{
		Base:                api.NewBase(RemoteHref(r.PulpType, r.ID), RemotePRNType(r.PulpType), r.ID, r.Created, r.LastUpdated),
		Name:                r.Name,
		URL:                 r.URL,
		PulpLabels:          labels,
		Policy:              r.Policy,
		HiddenFields:        hidden,
		CACert:              r.CACert,
		ClientCert:          r.ClientCert,
		TLSValidation:       r.TLSValidation,
		ProxyURL:            r.ProxyURL,
		MaxRetries:          r.MaxRetries,
		TotalTimeout:        r.TotalTimeout,
		ConnectTimeout:      r.ConnectTimeout,
		SockConnectTimeout:  r.SockConnectTimeout,
		SockReadTimeout:     r.SockReadTimeout,
		Headers:             headers,
		DownloadConcurrency: r.DownloadConcurrency,
		RateLimit:           r.RateLimit,
	}
}

// RemoteIDFromRef returns the id a remote href (of any type) or PRN names,
// or "" if ref names no remote.
func RemoteIDFromRef(ref string) string {
	if rest, ok := strings.CutPrefix(ref, "prn:"); ok {
		label, id, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasSuffix(label, "remote") || !store.ValidID(id) {
			return ""
		}
		return id
	}
	if i := strings.Index(ref, api.Root); i > 0 { // absolute URL
		ref = ref[i:]
	}
	rest, ok := strings.CutPrefix(ref, RemotesPath)
	if !ok {
		return ""
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(parts) != 3 || !store.ValidID(parts[2]) {
		return ""
	}
	return parts[2]
}

// remoteRefsIn filters by a comma-separated list of remote hrefs or PRNs.
func remoteRefsIn(q *api.Query, _, v string) error {
	var ph []string
	for _, ref := range strings.Split(v, ",") {
		if ref = strings.TrimSpace(ref); ref == "" {
			continue
		}
		id := RemoteIDFromRef(ref)
		if id == "" {
			return fmt.Errorf("%q is not a valid remote reference", ref)
		}
		ph = append(ph, q.Arg(id))
	}
	if len(ph) == 0 {
		q.Where("1 = 0")
		return nil
	}
	q.Where("id IN (" + strings.Join(ph, ", ") + ")")
	return nil
}

// RemoteFilterSet returns the filters and orderings every remote list
// offers (Pulp's RemoteFilter and base filters), plus extra.
func RemoteFilterSet(s *store.Store, extra ...api.Filter) *api.FilterSet {
	fs := &api.FilterSet{
		// Pulp orders by -pulp_created after any requested ordering.
		Tiebreak: "created DESC, id DESC",
		Ordering: map[string]string{
			"pk": "id", "pulp_id": "id", "pulp_created": "created", "pulp_last_updated": "last_updated",
			"pulp_type": "pulp_type", "name": "name", "url": "url", "policy": "policy", "ca_cert": "ca_cert",
			"client_cert": "client_cert", "tls_validation": "tls_validation", "proxy_url": "proxy_url",
			"download_concurrency": "download_concurrency", "max_retries": "max_retries", "rate_limit": "rate_limit",
			"total_timeout": "total_timeout", "connect_timeout": "connect_timeout",
			"sock_connect_timeout": "sock_connect_timeout", "sock_read_timeout": "sock_read_timeout",
		},
		Filters: []api.Filter{
			{Name: "pulp_id", Column: "id", Kind: api.Exact, Lookups: []string{"in"}, Doc: "Multiple values may be separated by commas."},
			{Name: "pulp_href", Kind: api.Custom, Lookups: []string{"in"}, Apply: remoteRefsIn, Doc: "Multiple values may be separated by commas."},
			{Name: "prn", Kind: api.Custom, Lookups: []string{"in"}, Apply: remoteRefsIn, Doc: "Multiple values may be separated by commas."},
			{Name: "name", Column: "name", Kind: api.Text, Doc: "Filter results where name matches value"},
			api.LabelSelectFilter("pulp_labels", s.JSONText),
			{Name: "pulp_last_updated", Column: "last_updated", Kind: api.Time, Doc: "Filter results where pulp_last_updated matches value"},
			{Name: "pulp_created", Column: "created", Kind: api.Time, Doc: "Filter results where pulp_created matches value"},
		},
	}
	fs.Filters = append(fs.Filters, extra...)
	return fs
}

// ListRemotes serves one page of remotes; base holds conditions of the
// list itself (e.g. its pulp_type) before the request's filters apply.
func ListRemotes[T any](c *api.Ctx, s *store.Store, fs *api.FilterSet, base func(q *api.Query), render func(*store.Remote) T) (any, error) {
	limit, offset, err := c.Paging()
	if err != nil {
		return nil, err
	}
	q := &api.Query{Regex: s.RegexMatch}
	if base != nil {
		base(q)
	}
	order, err := fs.Build(c.Query(), q)
	if err != nil {
		return nil, err
	}
	where, args := q.SQL()
	n, err := s.CountRemotes(c, where, args)
	if err != nil {
		return nil, err
	}
	rows, err := s.ListRemotes(c, where, args, order, limit, offset)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i] = render(r)
	}
	return c.Page(n, limit, offset, out), nil
}

// GenericRemoteRoutes returns remotes_list, the list of every remote type.
func GenericRemoteRoutes(d *Deps) []*api.Route {
	fs := RemoteFilterSet(d.Store, api.Filter{Name: "pulp_type", Column: "pulp_type", Kind: api.Exact, Doc: "Pulp type"})
	return []*api.Route{
		{OperationID: "remotes_list", Method: "GET", Path: RemotesPath, Tag: "Remotes", Summary: "List remotes",
			Query: fs.Params(), List: true, Response: GenericRemoteResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				return ListRemotes(c, d.Store, fs, nil, func(r *store.Remote) GenericRemoteResponse {
					return GenericRemoteResponse{NewRemoteResponse(r)}
				})
			}},
	}
}
