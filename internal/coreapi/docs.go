package coreapi

import (
	"encoding/json"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/pith-project/pith/internal/api"
)

// docsPage points browsers at the machine-readable document.
const docsPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pith API</title></head>
<body><h1>pith REST API</h1>
<p>The OpenAPI 3 document is at <a href="api.json">api.json</a> (and <a href="api.yaml">api.yaml</a>). pith speaks Pulp 3's REST API, so pulp-cli and Pulp's bindings work against it.</p>
</body></html>
`

func docsRoutes(s *api.Server) []*api.Route {
	// The document describes itself last, so it is built lazily on first use
	// from the full route table.
	yamlDoc := sync.OnceValues(func() ([]byte, error) {
		var doc any
		if err := json.Unmarshal(s.Document(), &doc); err != nil {
			return nil, fmt.Errorf("docs: api.yaml: %w", err)
		}
		return yaml.Marshal(doc)
	})
	return []*api.Route{
		{OperationID: "docs_api_yaml", Method: "GET", Path: api.Root + "docs/api.yaml", Tag: "Docs", Public: true,
			Summary: "OpenAPI 3 schema for this API, as YAML.",
			Handle: func(c *api.Ctx) (any, error) {
				b, err := yamlDoc()
				if err != nil {
					return nil, err
				}
				c.W.Header().Set("Cache-Control", "no-cache")
				return api.Raw("application/yaml", b), nil
			}},
		{OperationID: "docs_api_json", Method: "GET", Path: api.Root + "docs/api.json", Tag: "Docs", Public: true,
			Summary: "OpenAPI 3 schema for this API.",
			Handle: func(c *api.Ctx) (any, error) {
				c.W.Header().Set("Cache-Control", "no-cache")
				return api.Raw("application/json", s.Document()), nil
			}},
		{OperationID: "docs_read", Method: "GET", Path: api.Root + "docs/", Tag: "Docs", Public: true,
			Summary: "API documentation.",
			Handle: func(c *api.Ctx) (any, error) {
				return api.Raw("text/html; charset=utf-8", []byte(docsPage)), nil
			}},
	}
}
