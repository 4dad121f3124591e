package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/spf13/pflag"

	"github.com/pith-project/pith/internal/config"
)

// pending lists operation-id prefixes of pulp-cli operations whose
// endpoints belong to features not built yet; everything else in
// testdata/pulp_operations.txt must be in the document.
var pending = []string{}

func newTestServer(t *testing.T) *Server {
	t.Helper()
	var cfg config.Config
	fs := newFlagSet()
	cfg.Register(fs)
	if err := fs.Parse([]string{"--data-dir", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Load(fs); err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), &cfg, Roles{API: true, Content: true}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDocumentCoversPulpCLIOperations(t *testing.T) {
	s := newTestServer(t)
	doc := s.API.Document()
	var d struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for path, ops := range d.Paths {
		for method, op := range ops {
			have[op.OperationID] = strings.ToUpper(method) + " " + path
		}
	}
	f, err := os.Open("../api/testdata/pulp_operations.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	checked := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		id, want := fields[0], fields[1]+" "+fields[2]
		skip := false
		for _, p := range pending {
			if strings.HasPrefix(id, p) {
				skip = true
			}
		}
		if skip {
			continue
		}
		checked++
		if got := have[id]; got != want {
			t.Errorf("operation %s: document has %q, pulp-cli needs %q", id, got, want)
		}
	}
	if checked < 25 {
		t.Fatalf("only %d operations checked", checked)
	}
}

func TestDocumentValidatesAsOpenAPI3(t *testing.T) {
	s := newTestServer(t)
	var generic map[string]any
	if err := json.Unmarshal(s.API.Document(), &generic); err != nil {
		t.Fatal(err)
	}
	// Pulp's href-style keys ({task_href}) are its one deliberate deviation
	// (pulp-glue substitutes whole hrefs); validate with them made routable.
	paths := generic["paths"].(map[string]any)
	for k, v := range paths {
		if strings.HasPrefix(k, "{") {
			delete(paths, k)
			name := k[1:strings.IndexByte(k, '}')]
			paths["/"+name+"/"+k] = v
		}
	}
	fixed, _ := json.Marshal(generic)
	d, err := openapi3.NewLoader().LoadFromData(fixed)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(context.Background()); err != nil {
		t.Fatalf("document is not valid OpenAPI 3: %v", err)
	}
	// What pulp-glue's strict model rejects: path-item keys other than
	// methods, responses without description, path params not required.
	for path, item := range generic["paths"].(map[string]any) {
		for method, raw := range item.(map[string]any) {
			switch method {
			case "get", "put", "post", "patch", "delete":
			default:
				t.Errorf("%s: path item key %q", path, method)
				continue
			}
			op := raw.(map[string]any)
			if op["operationId"] == nil {
				t.Errorf("%s %s: no operationId", method, path)
			}
			for code, r := range op["responses"].(map[string]any) {
				if r.(map[string]any)["description"] == nil {
					t.Errorf("%s %s %s: response without description", method, path, code)
				}
			}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm := p.(map[string]any)
				if pm["in"] == "path" && pm["required"] != true {
					t.Errorf("%s %s: path param %v not required", method, path, pm["name"])
				}
				if _, bad := pm["allowReserved"]; bad {
					t.Errorf("%s %s: allowReserved", method, path)
				}
			}
		}
	}
}

func newFlagSet() *pflag.FlagSet { return pflag.NewFlagSet("test", pflag.ContinueOnError) }
