package api

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Schema is an OpenAPI 3 schema object, limited to what pith emits.
type Schema struct {
	Ref                  string             `json:"$ref,omitempty"`
	Type                 string             `json:"type,omitempty"`
	Format               string             `json:"format,omitempty"`
	Description          string             `json:"description,omitempty"`
	Enum                 []any              `json:"enum,omitempty"`
	Items                *Schema            `json:"items,omitempty"`
	Properties           map[string]*Schema `json:"properties,omitempty"`
	Required             []string           `json:"required,omitempty"`
	AdditionalProperties any                `json:"additionalProperties,omitempty"`
	Nullable             bool               `json:"nullable,omitempty"`
	ReadOnly             bool               `json:"readOnly,omitempty"`
	WriteOnly            bool               `json:"writeOnly,omitempty"`
	Minimum              *float64           `json:"minimum,omitempty"`
	Maximum              *float64           `json:"maximum,omitempty"`
	MinLength            *int               `json:"minLength,omitempty"`
	MaxLength            *int               `json:"maxLength,omitempty"`
	Default              any                `json:"default,omitempty"`
	AllOf                []*Schema          `json:"allOf,omitempty"`
}

// File is a request field carrying an uploaded file (multipart only).
type File struct {
	Name string
	Size int64
	// Path is the spool file on local disk; it is removed after the request.
	Path string
	// Open returns the file's bytes; the framework has already spooled the
	// part to disk or memory.
	Open func() (ReadSeekCloser, error)
}

// ReadSeekCloser is what an uploaded file offers.
type ReadSeekCloser interface {
	Read(p []byte) (int, error)
	Seek(offset int64, whence int) (int64, error)
	Close() error
}

// Namer lets a type choose its component name in the document.
type Namer interface{ SchemaName() string }

// SchemaProvider lets a type describe itself (e.g. free-form JSON values).
type SchemaProvider interface{ OpenAPISchema() *Schema }

var (
	timeType     = reflect.TypeFor[time.Time]()
	rawType      = reflect.TypeFor[json.RawMessage]()
	fileType     = reflect.TypeFor[File]()
	namerType    = reflect.TypeFor[Namer]()
	providerType = reflect.TypeFor[SchemaProvider]()
)

// fieldInfo describes one struct field as the API sees it, derived from its
// tags: `json:"name"` and `api:"required,readonly,writeonly,nullable"`,
// `enum:"a,b"`, `min:"1"`, `max:"…"`, `doc:"…"`, `default:"…"`.
type fieldInfo struct {
	name      string
	index     []int
	typ       reflect.Type
	required  bool
	readOnly  bool
	writeOnly bool
	nullable  bool
	enum      []string
	min, max  *float64
	minLen    *int
	doc       string
	def       string
}

func structFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			for _, sub := range structFields(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fi := fieldInfo{name: name, index: []int{i}, typ: f.Type, doc: f.Tag.Get("doc"), def: f.Tag.Get("default")}
		for _, o := range strings.Split(f.Tag.Get("api"), ",") {
			switch o {
			case "required":
				fi.required = true
			case "readonly":
				fi.readOnly = true
			case "writeonly":
				fi.writeOnly = true
			case "nullable":
				fi.nullable = true
			}
		}
		if e := f.Tag.Get("enum"); e != "" {
			fi.enum = strings.Split(e, ",")
		}
		if m := f.Tag.Get("min"); m != "" {
			v, _ := strconv.ParseFloat(m, 64)
			fi.min = &v
		}
		if m := f.Tag.Get("max"); m != "" {
			v, _ := strconv.ParseFloat(m, 64)
			fi.max = &v
		}
		if m := f.Tag.Get("minlen"); m != "" {
			v, _ := strconv.Atoi(m)
			fi.minLen = &v
		}
		out = append(out, fi)
	}
	return out
}

// schemaBuilder turns Go types into schemas, collecting named structs as
// components so the document stays small and pulp-glue can resolve $refs.
type schemaBuilder struct {
	components map[string]*Schema
	names      map[reflect.Type]string
}

func newSchemaBuilder() *schemaBuilder {
	return &schemaBuilder{components: map[string]*Schema{}, names: map[reflect.Type]string{}}
}

func typeName(t reflect.Type) string {
	if t.Implements(namerType) {
		return reflect.Zero(t).Interface().(Namer).SchemaName()
	}
	if reflect.PointerTo(t).Implements(namerType) {
		return reflect.New(t).Interface().(Namer).SchemaName()
	}
	n := t.Name()
	if i := strings.IndexByte(n, '['); i >= 0 { // generic instantiation
		n = n[:i]
	}
	return n
}

// ref returns a $ref to the component for struct type t, building it once.
// partial drops required (PATCH bodies, Pulp's "Patched…" schemas).
func (b *schemaBuilder) ref(t reflect.Type, partial bool) *Schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := typeName(t)
	if partial {
		name = "Patched" + name
	}
	if _, ok := b.components[name]; !ok {
		b.components[name] = &Schema{} // placeholder breaks cycles
		b.components[name] = b.object(t, partial)
	}
	return &Schema{Ref: "#/components/schemas/" + name}
}

func (b *schemaBuilder) object(t reflect.Type, partial bool) *Schema {
	s := &Schema{Type: "object", Properties: map[string]*Schema{}}
	for _, f := range structFields(t) {
		ps := b.schema(f.typ)
		if ps.Ref != "" && (f.nullable || f.readOnly || f.writeOnly || f.doc != "") {
			ps = &Schema{AllOf: []*Schema{ps}}
		}
		ps.Description = f.doc
		ps.ReadOnly = f.readOnly
		ps.WriteOnly = f.writeOnly
		if f.nullable {
			ps.Nullable = true
		}
		if len(f.enum) > 0 {
			for _, e := range f.enum {
				ps.Enum = append(ps.Enum, e)
			}
			if f.nullable {
				ps.Enum = append(ps.Enum, nil)
			}
		}
		if f.min != nil {
			ps.Minimum = f.min
		}
		if f.max != nil {
			ps.Maximum = f.max
		}
		if f.minLen != nil {
			ps.MinLength = f.minLen
		}
		if f.def != "" {
			var v any
			if json.Unmarshal([]byte(f.def), &v) == nil {
				ps.Default = v
			} else {
				ps.Default = f.def
			}
		}
		s.Properties[f.name] = ps
		if f.required && !partial && !f.readOnly {
			s.Required = append(s.Required, f.name)
		}
	}
	return s
}

func (b *schemaBuilder) schema(t reflect.Type) *Schema {
	if t.Implements(providerType) {
		return reflect.Zero(t).Interface().(SchemaProvider).OpenAPISchema()
	}
	if reflect.PointerTo(t).Implements(providerType) {
		return reflect.New(t).Interface().(SchemaProvider).OpenAPISchema()
	}
	switch t {
	case timeType:
		return &Schema{Type: "string", Format: "date-time"}
	case rawType:
		return &Schema{Type: "object"}
	case fileType:
		return &Schema{Type: "string", Format: "binary"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		// Pointers mark optional fields; nullability is the `api:"nullable"` tag's job.
		return b.schema(t.Elem())
	case reflect.String:
		return &Schema{Type: "string"}
	case reflect.Bool:
		return &Schema{Type: "boolean"}
	case reflect.Int, reflect.Int32, reflect.Uint32, reflect.Int16:
		return &Schema{Type: "integer", Format: "int32"}
	case reflect.Int64, reflect.Uint64:
		return &Schema{Type: "integer", Format: "int64"}
	case reflect.Float32, reflect.Float64:
		return &Schema{Type: "number", Format: "double"}
	case reflect.Slice, reflect.Array:
		return &Schema{Type: "array", Items: b.schema(t.Elem())}
	case reflect.Map:
		return &Schema{Type: "object", AdditionalProperties: b.schema(t.Elem())}
	case reflect.Interface:
		return &Schema{}
	case reflect.Struct:
		return b.ref(t, false)
	}
	return &Schema{}
}
