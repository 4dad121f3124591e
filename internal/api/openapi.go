package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// Document returns the OpenAPI 3 document generated from the route table.
func (s *Server) Document() []byte {
	s.docOnce.Do(func() { s.doc = buildDocument(s.routes, s.opts.Info) })
	return s.doc
}

type operation struct {
	OperationID string              `json:"operationId"`
	Summary     string              `json:"summary,omitempty"`
	Description string              `json:"description,omitempty"`
	Tags        []string            `json:"tags,omitempty"`
	Parameters  []parameter         `json:"parameters,omitempty"`
	RequestBody *requestBody        `json:"requestBody,omitempty"`
	Responses   map[string]response `json:"responses"`
	Security    []map[string][]any  `json:"security,omitempty"`
}

type parameter struct {
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Required    bool    `json:"required,omitempty"`
	Description string  `json:"description,omitempty"`
	Schema      *Schema `json:"schema"`
	Explode     *bool   `json:"explode,omitempty"`
	Style       string  `json:"style,omitempty"`
}

type mediaType struct {
	Schema *Schema `json:"schema"`
}

type requestBody struct {
	Content  map[string]mediaType `json:"content"`
	Required bool                 `json:"required,omitempty"`
}

type response struct {
	Description string               `json:"description"`
	Content     map[string]mediaType `json:"content,omitempty"`
}

func buildDocument(routes []*Route, info map[string]any) []byte {
	b := newSchemaBuilder()
	paths := map[string]map[string]*operation{}
	for _, rt := range routes {
		sp := rt.specPath()
		if paths[sp] == nil {
			paths[sp] = map[string]*operation{}
		}
		op := &operation{
			OperationID: rt.OperationID,
			Summary:     rt.Summary,
			Description: rt.Summary,
			Tags:        []string{rt.Tag},
			Responses:   map[string]response{},
		}
		if !rt.Public {
			op.Security = []map[string][]any{{"basicAuth": {}}}
		}
		if rt.Href != "" {
			op.Parameters = append(op.Parameters, parameter{Name: rt.Href, In: "path", Required: true, Schema: &Schema{Type: "string"}})
		} else {
			for _, seg := range strings.Split(rt.Path, "/") {
				if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
					name := strings.TrimSuffix(strings.TrimPrefix(seg, "{"), "}")
					op.Parameters = append(op.Parameters, parameter{Name: name, In: "path", Required: true, Schema: &Schema{Type: "string"}})
				}
			}
		}
		query := rt.Query
		if rt.Method == http.MethodGet && !hasParam(query, "fields") {
			// Pulp accepts field selection on every read, and pulp-glue
			// passes these on every list call.
			query = append(query[:len(query):len(query)],
				Param{Name: "fields", Type: "array", Description: "A list of fields to include in the response."},
				Param{Name: "exclude_fields", Type: "array", Description: "A list of fields to exclude from the response."})
		}
		for _, h := range rt.Headers {
			op.Parameters = append(op.Parameters, parameter{Name: h.Name, In: "header", Required: true, Description: h.Description, Schema: &Schema{Type: h.Type}})
		}
		for _, p := range query {
			ps := &Schema{Type: p.Type, Format: p.Format}
			prm := parameter{Name: p.Name, In: "query", Description: p.Description, Schema: ps}
			if p.Type == "array" && (p.Name == "fields" || p.Name == "exclude_fields") {
				ps.Items = &Schema{Type: "string"}
			} else if p.Type == "array" {
				ps.Items = &Schema{Type: "string"}
				if len(p.Enum) > 0 {
					for _, e := range p.Enum {
						ps.Items.Enum = append(ps.Items.Enum, e)
					}
				}
				f := false
				prm.Explode = &f
				prm.Style = "form"
			} else if len(p.Enum) > 0 {
				for _, e := range p.Enum {
					ps.Enum = append(ps.Enum, e)
				}
			}
			op.Parameters = append(op.Parameters, prm)
		}
		if rt.Body != nil {
			ref := b.ref(reflect.TypeOf(rt.Body), rt.Partial)
			content := map[string]mediaType{}
			if !rt.Multipart {
				content["application/json"] = mediaType{Schema: ref}
			}
			content["application/x-www-form-urlencoded"] = mediaType{Schema: ref}
			content["multipart/form-data"] = mediaType{Schema: ref}
			// Pulp marks every request body required; pulp-glue relies on it.
			op.RequestBody = &requestBody{Content: content, Required: true}
		}
		code := strconv.Itoa(rt.Status)
		resp := response{Description: http.StatusText(rt.Status)}
		if rt.Response != nil {
			var sch *Schema
			if rt.List {
				item := b.schema(reflect.TypeOf(rt.Response))
				name := "Paginated" + strings.TrimPrefix(item.Ref, "#/components/schemas/") + "List"
				b.components[name] = &Schema{
					Type:     "object",
					Required: []string{"count", "results"},
					Properties: map[string]*Schema{
						"count":    {Type: "integer"},
						"next":     {Type: "string", Format: "uri", Nullable: true},
						"previous": {Type: "string", Format: "uri", Nullable: true},
						"results":  {Type: "array", Items: item},
					},
				}
				sch = &Schema{Ref: "#/components/schemas/" + name}
			} else {
				sch = b.schema(reflect.TypeOf(rt.Response))
			}
			resp.Content = map[string]mediaType{"application/json": {Schema: sch}}
		}
		op.Responses[code] = resp
		for _, alt := range rt.AltStatus {
			op.Responses[strconv.Itoa(alt)] = response{Description: http.StatusText(alt), Content: resp.Content}
		}
		paths[sp][strings.ToLower(rt.Method)] = op
	}
	inf := map[string]any{"title": "Pulp 3 API", "version": "v3", "description": "Fetch, Upload, Organize, and Distribute Software Packages"}
	for k, v := range info {
		inf[k] = v
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info":    inf,
		"paths":   paths,
		"components": map[string]any{
			"schemas": b.components,
			"securitySchemes": map[string]any{
				"basicAuth": map[string]any{"type": "http", "scheme": "basic"},
			},
		},
		"servers": []map[string]string{{"url": "/"}},
	}
	out, err := json.Marshal(doc)
	if err != nil {
		panic("api: encode document: " + err.Error())
	}
	return out
}

func hasParam(ps []Param, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}
