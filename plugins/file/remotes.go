package file

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/store"
)

// RemotePRNType is the PRN model label of file remotes; it also names the
// resource kind of their general update and delete tasks.
const RemotePRNType = "file.fileremote"

const (
	remoteHrefParam     = "file_file_remote_href"
	remoteTag           = "Remotes: File"
	remotePolicyDefault = "immediate"
)

// FileRemote is the request body of remote create, update and partial
// update. Which fields a request carried matters (absent fields keep their
// value, null clears a nullable one), so handlers ask api.Ctx.Has.
type FileRemote struct {
	Name                string            `json:"name" api:"required" minlen:"1" doc:"Unique name of the remote."`
	URL                 string            `json:"url" api:"required" minlen:"1" doc:"Where the PULP_MANIFEST is: http, https, or file below an allowed import path. No credentials in the URL."`
	PulpLabels          map[string]string `json:"pulp_labels" doc:"Labels: keys of letters, digits, '_', ' ', '.', '-'; values without parentheses."`
	Policy              string            `json:"policy" enum:"immediate,on_demand,streamed" default:"immediate" doc:"When content is downloaded: immediate (at sync, the default), on_demand (when first requested, then kept) or streamed (when requested, never kept)."`
	CACert              *string           `json:"ca_cert" api:"nullable" minlen:"1" doc:"PEM certificates trusted, besides the system ones, to verify the server. Only the CERTIFICATE blocks are kept."`
	ClientCert          *string           `json:"client_cert" api:"nullable" minlen:"1" doc:"PEM certificate presented to the server (mutual TLS)."`
	ClientKey           *string           `json:"client_key" api:"nullable,writeonly" minlen:"1" doc:"PEM private key of client_cert."`
	TLSValidation       bool              `json:"tls_validation" default:"true" doc:"Whether the server certificate is verified (default true)."`
	ProxyURL            *string           `json:"proxy_url" api:"nullable" minlen:"1" doc:"Proxy for every request, as http(s)://host:port; credentials go in proxy_username and proxy_password."`
	ProxyUsername       *string           `json:"proxy_username" api:"nullable,writeonly" minlen:"1" doc:"User name for the proxy; needs proxy_password and proxy_url."`
	ProxyPassword       *string           `json:"proxy_password" api:"nullable,writeonly" minlen:"1" doc:"Password for the proxy, kept exactly as given."`
	Username            *string           `json:"username" api:"nullable,writeonly" minlen:"1" doc:"User name for HTTP basic authentication to the remote."`
	Password            *string           `json:"password" api:"nullable,writeonly" minlen:"1" doc:"Password for HTTP basic authentication, kept exactly as given."`
	MaxRetries          *int64            `json:"max_retries" api:"nullable" min:"0" doc:"Retries after a failed download attempt; null or 0 means 3."`
	TotalTimeout        *float64          `json:"total_timeout" api:"nullable" min:"0" doc:"Seconds one download attempt may take; null or 0 means 300."`
	ConnectTimeout      *float64          `json:"connect_timeout" api:"nullable" min:"0" doc:"Seconds for connecting, TLS handshake included; null or 0 means 30."`
	SockConnectTimeout  *float64          `json:"sock_connect_timeout" api:"nullable" min:"0" doc:"Seconds for connecting, TLS handshake included; null or 0 means 30."`
	SockReadTimeout     *float64          `json:"sock_read_timeout" api:"nullable" min:"0" doc:"Seconds to wait for each read from the server; null or 0 means no limit."`
	Headers             []map[string]any  `json:"headers" doc:"Headers sent on every request, as a list of single-key objects such as {\"X-Token\": \"abc\"}."`
	DownloadConcurrency *int64            `json:"download_concurrency" api:"nullable" min:"1" doc:"Downloads running at once; null means 10."`
	RateLimit           *int64            `json:"rate_limit" api:"nullable" min:"0" doc:"Requests per second at most; null or 0 means no limit."`
}

// SchemaName names the component as Pulp does.
func (FileRemote) SchemaName() string { return "file.FileRemote" }

// FileRemoteResponse is a file remote as the API shows it.
type FileRemoteResponse struct {
	coreapi.RemoteResponse
}

// SchemaName names the component as Pulp does.
func (FileRemoteResponse) SchemaName() string { return "file.FileRemoteResponse" }

// remoteFields lists FileRemote's fields by wire name, to record which a
// request carried.
var remoteFields = func() []string {
	t := reflect.TypeFor[FileRemote]()
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}()

// DownloadConfig turns a remote's settings into the downloader's. Null
// and zero values take the downloader's defaults, as Pulp treats them as
// unset.
func DownloadConfig(r *store.Remote, allowedImportPaths []string) download.Config {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	num := func(p *int64) int {
		if p == nil {
			return 0
		}
		return int(*p)
	}
	secs := func(p *float64) float64 {
		if p == nil {
			return 0
		}
		return *p
	}
	return download.Config{
		CACert:              str(r.CACert),
		ClientCert:          str(r.ClientCert),
		ClientKey:           str(r.ClientKey),
		InsecureSkipVerify:  !r.TLSValidation,
		ProxyURL:            str(r.ProxyURL),
		ProxyUsername:       str(r.ProxyUsername),
		ProxyPassword:       str(r.ProxyPassword),
		Username:            str(r.Username),
		Password:            str(r.Password),
		Headers:             r.Headers,
		DownloadConcurrency: num(r.DownloadConcurrency),
		RateLimit:           num(r.RateLimit),
		MaxRetries:          num(r.MaxRetries),
		TotalTimeout:        secs(r.TotalTimeout),
		ConnectTimeout:      secs(r.ConnectTimeout),
		SockConnectTimeout:  secs(r.SockConnectTimeout),
		SockReadTimeout:     secs(r.SockReadTimeout),
		AllowedImportPaths:  allowedImportPaths,
	}
}

// LookupRemote resolves a file remote href or PRN (as a repository's
// remote or a sync request names it). Anything else is store.ErrNotFound.
func (d *Deps) LookupRemote(ctx context.Context, ref string) (*store.Remote, error) {
	id := api.IDFromHref(ref, RemotesPath, RemotePRNType)
	if id == "" {
		return nil, store.ErrNotFound
	}
	return d.getFileRemote(ctx, id)
}

func (d *Deps) getFileRemote(ctx context.Context, id string) (*store.Remote, error) {
	if !store.ValidID(id) {
		return nil, store.ErrNotFound
	}
	r, err := d.Store.GetRemote(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.PulpType != Type {
		return nil, store.ErrNotFound
	}
	return r, nil
}

func fileRemoteResponse(r *store.Remote) FileRemoteResponse {
	return FileRemoteResponse{coreapi.NewRemoteResponse(r)}
}

// remoteUpdate is the argument of a remote's general update task: the
// validated request body and the fields it carried.
type remoteUpdate struct {
	Fields []string   `json:"fields"`
	Put    bool       `json:"put"`
	Body   FileRemote `json:"body"`
}

func remoteRoutes(d *Deps) []*api.Route {
	fs := coreapi.RemoteFilterSet(d.Store,
		api.Filter{Name: "url", Column: "url", Kind: api.Exact, Doc: "Filter results where url matches value"},
		api.Filter{Name: "policy", Column: "policy", Kind: api.Exact, Doc: "Filter results where policy matches value"},
	)
	detail := RemotesPath + "{pulp_id}/"
	routes := []*api.Route{
		{OperationID: "remotes_file_file_list", Method: http.MethodGet, Path: RemotesPath, Tag: remoteTag, Summary: "List file remotes",
			Query: fs.Params(), List: true, Response: FileRemoteResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				return coreapi.ListRemotes(c, d.Store, fs, func(q *api.Query) { q.Where("pulp_type = ?", Type) }, fileRemoteResponse)
			}},
		{OperationID: "remotes_file_file_create", Method: http.MethodPost, Path: RemotesPath, Tag: remoteTag, Summary: "Create a file remote",
			Body: &FileRemote{}, Response: FileRemoteResponse{}, Status: http.StatusCreated, Handle: d.createRemote},
		{OperationID: "remotes_file_file_read", Method: http.MethodGet, Path: detail, Href: remoteHrefParam, Tag: remoteTag,
			Summary: "Inspect a file remote", Response: FileRemoteResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				r, err := d.getFileRemote(c, c.PathValue("pulp_id"))
				if err != nil {
					return nil, err
				}
				return fileRemoteResponse(r), nil
			}},
		{OperationID: "remotes_file_file_update", Method: http.MethodPut, Path: detail, Href: remoteHrefParam, Tag: remoteTag,
			Summary: "Update a file remote", Body: &FileRemote{}, Response: api.AsyncResponse{},
			Status: http.StatusAccepted, AltStatus: []int{http.StatusOK},
			Handle: func(c *api.Ctx) (any, error) { return d.updateRemote(c, true) }},
		{OperationID: "remotes_file_file_partial_update", Method: http.MethodPatch, Path: detail, Href: remoteHrefParam, Tag: remoteTag,
			Summary: "Update a file remote partially", Body: &FileRemote{}, Partial: true, Response: api.AsyncResponse{},
			Status: http.StatusAccepted, AltStatus: []int{http.StatusOK},
			Handle: func(c *api.Ctx) (any, error) { return d.updateRemote(c, false) }},
		{OperationID: "remotes_file_file_delete", Method: http.MethodDelete, Path: detail, Href: remoteHrefParam, Tag: remoteTag,
			Summary: "Delete a file remote", Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: func(c *api.Ctx) (any, error) {
				r, err := d.getFileRemote(c, c.PathValue("pulp_id"))
				if err != nil {
					return nil, err
				}
				// Refuse at once what the task would refuse; the task checks
				// again, as things may change until it runs.
				found, err := d.Store.RemoteSoleSource(c, nil, r.ID)
				if err != nil {
					return nil, err
				}
				if found.Units > 0 {
					return nil, api.NonFieldError(soleSourceMessage(r.Name, found))
				}
				// Never immediate: deleting cascades to every remote artifact.
				t, err := d.Core.DispatchDelete(c, RemotePRNType, r.ID, false, coreapi.RemotePRN(r))
				if err != nil {
					return nil, err
				}
				return api.AsyncResponse{Task: coreapi.TaskHref(t.ID)}, nil
			}},
	}
	labels := api.LabelActions{
		OperationPrefix: "remotes_file_file", Detail: detail, Href: remoteHrefParam, Tag: remoteTag, Status: http.StatusCreated,
		Modify: func(c *api.Ctx, id string, fn func(map[string]string) error) error {
			if _, err := d.getFileRemote(c, id); err != nil {
				return err
			}
			_, err := d.Store.ModifyLabels(c, "remotes", id, fn)
			return err
		},
	}
	return append(routes, labels.Routes()...)
}

func (d *Deps) createRemote(c *api.Ctx) (any, error) {
	r := &store.Remote{
		PulpType: Type, Policy: remotePolicyDefault, TLSValidation: true,
		Headers: []map[string]string{}, Labels: map[string]string{},
	}
	if err := d.validateRemote(c, r, api.Body[FileRemote](c), c.Has, true); err != nil {
		return nil, err
	}
	if err := d.Store.InsertRemote(c, nil, r); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, api.FieldError("name", "This field must be unique.")
		}
		return nil, err
	}
	return fileRemoteResponse(r), nil
}

// updateRemote validates the whole would-be remote, answers 200 with the
// remote when the request changes nothing, and otherwise dispatches the
// change as an immediate task (Pulp's 202).
func (d *Deps) updateRemote(c *api.Ctx, put bool) (any, error) {
	cur, err := d.getFileRemote(c, c.PathValue("pulp_id"))
	if err != nil {
		return nil, err
	}
	next := cloneRemote(cur)
	b := api.Body[FileRemote](c)
	if err := d.validateRemote(c, next, b, c.Has, put); err != nil {
		return nil, err
	}
	if reflect.DeepEqual(cur, next) {
		c.SetStatus(http.StatusOK)
		return fileRemoteResponse(cur), nil
	}
	up := remoteUpdate{Put: put, Body: *b}
	for _, f := range remoteFields {
		if c.Has(f) {
			up.Fields = append(up.Fields, f)
		}
	}
	t, err := d.Core.DispatchUpdate(c, RemotePRNType, cur.ID, up, coreapi.RemotePRN(cur))
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: coreapi.TaskHref(t.ID)}, nil
}

func cloneRemote(r *store.Remote) *store.Remote {
	c := *r
	c.Labels = maps.Clone(r.Labels)
	c.Headers = make([]map[string]string, len(r.Headers))
	for i, h := range r.Headers {
		c.Headers[i] = maps.Clone(h)
	}
	return &c
}

// validateRemote applies the fields of b that has reports onto r and
// checks the result as Pulp does: each field first, then the name's
// uniqueness, then the rules spanning fields. put applies the defaults of
// fields a full update left out.
func (d *Deps) validateRemote(ctx context.Context, r *store.Remote, b *FileRemote, has func(string) bool, put bool) error {
	fe := d.applyRemoteFields(r, b, has, put)
	if has("name") && fe["name"] == nil {
		other, err := d.Store.RemoteByName(ctx, r.Name)
		switch {
		case err == nil && other.ID != r.ID:
			fe.Add("name", "This field must be unique.")
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	if len(fe) > 0 {
		return fe
	}
	if msgs := remoteCrossProblems(r); len(msgs) > 0 {
		return api.FieldErrors{"non_field_errors": msgs}
	}
	return nil
}

func (d *Deps) applyRemoteFields(r *store.Remote, b *FileRemote, has func(string) bool, put bool) api.FieldErrors {
	fe := api.FieldErrors{}
	// Text fields are trimmed as DRF does; passwords are kept as given.
	trimmed := func(p *string) *string {
		if p == nil {
			return nil
		}
		s := strings.TrimSpace(*p)
		return &s
	}
	if has("name") {
		r.Name = strings.TrimSpace(b.Name)
	}
	if has("url") {
		u := strings.TrimSpace(b.URL)
		if msg := d.remoteURLProblem(u); msg != "" {
			fe.Add("url", msg)
		}
		r.URL = u
	}
	if has("pulp_labels") {
		if e := api.ValidateLabels(b.PulpLabels); e != nil {
			maps.Copy(fe, e)
		}
		r.Labels = maps.Clone(b.PulpLabels)
		if r.Labels == nil {
			r.Labels = map[string]string{}
		}
	}
	if has("policy") {
		r.Policy = b.Policy
	} else if put {
		r.Policy = remotePolicyDefault
	}
	for _, cert := range []struct {
		name string
		in   *string
		out  **string
	}{{"ca_cert", b.CACert, &r.CACert}, {"client_cert", b.ClientCert, &r.ClientCert}} {
		if !has(cert.name) {
			continue
		}
		*cert.out = nil
		if cert.in == nil {
			continue
		}
		clean, err := download.CleanPEM(*cert.in)
		if err != nil {
			fe.Add(cert.name, fmt.Sprintf("Invalid %s: %v.", cert.name, err))
			continue
		}
		*cert.out = &clean
	}
	if has("client_key") {
		r.ClientKey = trimmed(b.ClientKey)
		if r.ClientKey != nil && !pemHasPrivateKey(*r.ClientKey) {
			fe.Add("client_key", "Invalid client_key: no PEM private key found.")
		}
	}
	if has("tls_validation") {
		r.TLSValidation = b.TLSValidation
	}
	if has("proxy_url") {
		r.ProxyURL = trimmed(b.ProxyURL)
		if r.ProxyURL != nil {
			if msg := proxyURLProblem(*r.ProxyURL); msg != "" {
				fe.Add("proxy_url", msg)
			}
		}
	}
	if has("proxy_username") {
		r.ProxyUsername = trimmed(b.ProxyUsername)
	}
	if has("proxy_password") {
		r.ProxyPassword = b.ProxyPassword
	}
	if has("username") {
		r.Username = trimmed(b.Username)
	}
	if has("password") {
		r.Password = b.Password
	}
	if has("max_retries") {
		r.MaxRetries = b.MaxRetries
	}
	if has("rate_limit") {
		r.RateLimit = b.RateLimit
	}
	if has("download_concurrency") {
		r.DownloadConcurrency = b.DownloadConcurrency
	}
	if has("total_timeout") {
		r.TotalTimeout = b.TotalTimeout
	}
	if has("connect_timeout") {
		r.ConnectTimeout = b.ConnectTimeout
	}
	if has("sock_connect_timeout") {
		r.SockConnectTimeout = b.SockConnectTimeout
	}
	if has("sock_read_timeout") {
		r.SockReadTimeout = b.SockReadTimeout
	}
	if has("headers") {
		h, msgs := checkRemoteHeaders(b.Headers)
		for _, m := range msgs {
			fe.Add("headers", m)
		}
		r.Headers = h
	}
	return fe
}

// remoteURLProblem checks a remote URL: http(s) with a host, or a file
// URL below an allowed import path; never with credentials.
func (d *Deps) remoteURLProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "Enter a valid URL."
	}
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass || u.User.Username() != "" {
			return "The remote url contains username or password. Please use remote username or password instead."
		}
	}
	switch u.Scheme {
	case "http", "https":
		if u.Hostname() == "" {
			return "Enter a valid URL."
		}
		return ""
	case "file":
	default:
		return "The URL scheme must be http, https or file."
	}
	given := raw[len("file://"):]
	if (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) {
		return fmt.Sprintf("The path '%s' needs to be an absolute pathname.", given)
	}
	p := filepath.Clean(u.Path)
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	for _, a := range d.AllowedImportPaths {
		if a == "" || !filepath.IsAbs(a) {
			continue
		}
		bases := []string{filepath.Clean(a)}
		if real, err := filepath.EvalSymlinks(bases[0]); err == nil {
			bases = append(bases, real)
		}
		for _, base := range bases {
			if importPathWithin(base, p) {
				return ""
			}
		}
	}
	return fmt.Sprintf("The path '%s' does not start with any of the allowed import paths", given)
}

// importPathWithin reports whether p is base or lies below it, component-wise (so
// /data/import2 is not within /data/import).
func importPathWithin(base, p string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func proxyURLProblem(raw string) string {
	if strings.Contains(raw, "@") {
		return "proxy_url must not contain credentials"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "proxy_url must be an http:// or https:// URL with a host."
	}
	return ""
}

func pemHasPrivateKey(s string) bool {
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
			return true
		}
		if _, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
			return true
		}
		if _, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
			return true
		}
	}
}

// checkRemoteHeaders validates the list of single-key {name: value} objects.
func checkRemoteHeaders(in []map[string]any) ([]map[string]string, []string) {
	out := make([]map[string]string, 0, len(in))
	var msgs []string
	for i, h := range in {
		if len(h) != 1 {
			msgs = append(msgs, fmt.Sprintf("Header %d must be an object with exactly one name: value pair.", i))
			continue
		}
		for name, v := range h {
			val, ok := v.(string)
			switch {
			case !validRemoteHeaderName(name):
				msgs = append(msgs, fmt.Sprintf("Header %d: %q is not a valid header name.", i, name))
			case !ok:
				msgs = append(msgs, fmt.Sprintf("Header %d: the value of %q must be a string.", i, name))
			case !validRemoteHeaderValue(val):
				msgs = append(msgs, fmt.Sprintf("Header %d: the value of %q must not contain control characters.", i, name))
			default:
				out = append(out, map[string]string{name: val})
			}
		}
	}
	return out, msgs
}

// validRemoteHeaderName reports whether s is an HTTP token (RFC 9110).
func validRemoteHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validRemoteHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// remoteCrossProblems checks the rules spanning fields on the would-be
// remote.
func remoteCrossProblems(r *store.Remote) []string {
	set := func(p *string) bool { return p != nil && *p != "" }
	var msgs []string
	if (set(r.ProxyUsername) || set(r.ProxyPassword)) && !set(r.ProxyURL) {
		msgs = append(msgs, "proxy credentials cannot be specified without a proxy")
	}
	if set(r.ProxyUsername) != set(r.ProxyPassword) {
		msgs = append(msgs, "proxy username and password can only be specified together")
	}
	if set(r.ClientCert) && set(r.ClientKey) {
		if _, err := tls.X509KeyPair([]byte(*r.ClientCert), []byte(*r.ClientKey)); err != nil {
			msgs = append(msgs, fmt.Sprintf("client_cert and client_key do not form a key pair: %v", err))
		}
	}
	return msgs
}

// registerRemoteTasks makes file remotes updatable and deletable by the
// general tasks.
func registerRemoteTasks(d *Deps) {
	d.Core.RegisterMutator(RemotePRNType, coreapi.Mutator{
		Update: func(ctx context.Context, id string, body json.RawMessage) error {
			var up remoteUpdate
			if err := json.Unmarshal(body, &up); err != nil {
				return fmt.Errorf("update remote %s: %w", id, err)
			}
			fields := map[string]bool{}
			for _, f := range up.Fields {
				fields[f] = true
			}
			has := func(f string) bool { return fields[f] }
			// Validate again against the row as it is now: another change
			// may have landed since the request was checked.
			_, err := d.Store.ModifyRemote(ctx, id, func(r *store.Remote) error {
				return d.validateRemote(ctx, r, &up.Body, has, up.Put)
			})
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("update remote %s: name: This field must be unique", id)
			}
			return err
		},
		Delete: func(ctx context.Context, id string) error {
			r, err := d.Store.GetRemote(ctx, id)
			if err != nil {
				return err
			}
			found, err := d.Store.DeleteRemoteUnlessSoleSource(ctx, id)
			if err != nil {
				return err
			}
			if found.Units > 0 {
				return errors.New(soleSourceMessage(r.Name, found))
			}
			return nil
		},
	})
}

// soleSourceMessage explains why a remote cannot be deleted: it is the only
// source distributions have for content not downloaded yet, so deleting it
// would turn those files into errors.
func soleSourceMessage(remote string, f store.SoleSource) string {
	const show = 10
	names := make([]string, 0, min(len(f.Repositories), show))
	for _, n := range f.Repositories[:min(len(f.Repositories), show)] {
		names = append(names, "'"+n+"'")
	}
	list := strings.Join(names, ", ")
	if more := len(f.Repositories) - show; more > 0 {
		list += fmt.Sprintf(" and %d more", more)
	}
	units, repos := "units", "repositories"
	if f.Units == 1 {
		units = "unit"
	}
	if len(f.Repositories) == 1 {
		repos = "repository"
	}
	return fmt.Sprintf("Remote '%s' is the only source of %d on-demand content %s served by distributions of %s %s. "+
		"Download them first (POST to the repository version's download/), or remove them from the served versions "+
		"or delete those distributions; then delete the remote.", remote, f.Units, units, repos, list)
}
