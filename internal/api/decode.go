package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Limits on request bodies. JSON bodies are small; uploaded files stream to
// a spool file and are bounded separately.
const (
	maxJSONBody      = 8 << 20
	maxFormValue     = 1 << 20
	maxMultipartBody = 64 << 30
)

// Values holds decoded body fields in wire form, keyed by field name, so
// JSON and multipart bodies share one validation path.
type Values struct {
	raw   map[string]json.RawMessage
	files map[string]*File
}

// readBody decodes the request body into wire-form values by content type.
func readBody(r *http.Request, spoolDir string) (*Values, error) {
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	v := &Values{raw: map[string]json.RawMessage{}, files: map[string]*File{}}
	switch ct {
	case "multipart/form-data":
		if err := readMultipart(r, params["boundary"], spoolDir, v); err != nil {
			v.cleanup()
			return nil, err
		}
	case "application/x-www-form-urlencoded":
		r.Body = http.MaxBytesReader(nil, r.Body, maxJSONBody)
		if err := r.ParseForm(); err != nil {
			return nil, Detail(http.StatusBadRequest, "Malformed form body: "+err.Error())
		}
		for k, vals := range r.PostForm {
			if len(vals) > 0 {
				v.raw[k] = formValue(vals[len(vals)-1])
			}
		}
	default:
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxJSONBody))
		if err != nil {
			// A 400 as Pulp (Django's RequestDataTooBig) answers.
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, Detail(http.StatusBadRequest, "Request body exceeds the maximum size of 8 MiB.")
			}
			return nil, Detail(http.StatusBadRequest, "Could not read the request body: "+err.Error())
		}
		body = bytes.TrimSpace(body)
		if len(body) == 0 {
			return v, nil
		}
		if ct != "" && ct != "application/json" && !strings.HasSuffix(ct, "+json") {
			return nil, Detail(http.StatusUnsupportedMediaType, fmt.Sprintf("Unsupported media type %q in request.", ct))
		}
		if err := json.Unmarshal(body, &v.raw); err != nil {
			if body[0] != '{' {
				return nil, FieldErrors{"non_field_errors": {"Invalid data. Expected a dictionary, but got " + jsonKind(body) + "."}}
			}
			return nil, Detail(http.StatusBadRequest, "JSON parse error - "+err.Error())
		}
	}
	return v, nil
}

func jsonKind(b []byte) string {
	switch b[0] {
	case '[':
		return "list"
	case '"':
		return "str"
	case 't', 'f':
		return "bool"
	case 'n':
		return "NoneType"
	}
	return "int"
}

// formValue turns a form string into a JSON token: JSON literals stay as
// they are (numbers, booleans, objects, lists), anything else is a string.
// The field's type decides later; strings are re-quoted there if needed.
func formValue(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func readMultipart(r *http.Request, boundary, spoolDir string, v *Values) error {
	if boundary == "" {
		return Detail(http.StatusBadRequest, "Multipart form parse error - Invalid boundary in multipart: None")
	}
	mr := multipart.NewReader(http.MaxBytesReader(nil, r.Body, maxMultipartBody), boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return Detail(http.StatusBadRequest, "Multipart form parse error - "+err.Error())
		}
		name := p.FormName()
		if name == "" {
			p.Close()
			continue
		}
		if p.FileName() == "" {
			b, err := io.ReadAll(io.LimitReader(p, maxFormValue+1))
			p.Close()
			if err != nil {
				return Detail(http.StatusBadRequest, "Multipart form parse error - "+err.Error())
			}
			if len(b) > maxFormValue {
				return FieldErrors{name: {"Ensure this field has no more than 1048576 characters."}}
			}
			v.raw[name] = formValue(string(b))
			continue
		}
		f, err := spool(p, spoolDir)
		p.Close()
		if err != nil {
			return err
		}
		if old := v.files[name]; old != nil {
			old.remove()
		}
		v.files[name] = f
		v.raw[name] = json.RawMessage(`"` + name + `"`)
	}
}

// spool copies an uploaded file part to a temporary file so handlers can
// read it more than once without holding it in memory.
func spool(p *multipart.Part, dir string) (*File, error) {
	tf, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("api: spool upload: %w", err)
	}
	n, err := io.Copy(tf, p)
	if cerr := tf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tf.Name())
		return nil, Detail(http.StatusBadRequest, "Multipart form parse error - "+err.Error())
	}
	path := tf.Name()
	return &File{
		Name: p.FileName(),
		Size: n,
		Path: path,
		Open: func() (ReadSeekCloser, error) { return os.Open(path) },
	}, nil
}

func (v *Values) cleanup() {
	if v == nil {
		return
	}
	for _, f := range v.files {
		f.remove()
	}
}

func (f *File) remove() {
	if f.Path != "" {
		os.Remove(f.Path)
	}
}

// Has reports whether the body carried the field (even as null).
func (v *Values) Has(name string) bool {
	_, ok := v.raw[name]
	return ok
}

// decodeInto validates the wire values against dst's struct fields and fills
// dst. partial skips required checks (PATCH). It returns Pulp-style field
// errors: unknown fields, wrong types, nulls, choices, bounds, blanks.
func decodeInto(v *Values, dst any, partial bool) FieldErrors {
	rv := reflect.ValueOf(dst).Elem()
	fields := structFields(rv.Type())
	errs := FieldErrors{}
	known := map[string]bool{}
	for _, f := range fields {
		known[f.name] = true
		raw, ok := v.raw[f.name]
		if !ok {
			if f.required && !partial && !f.readOnly {
				errs.Add(f.name, "This field is required.")
			}
			continue
		}
		if f.readOnly {
			continue // DRF ignores read-only input
		}
		fv := rv.FieldByIndex(f.index)
		if string(raw) == "null" {
			if !f.nullable {
				errs.Add(f.name, "This field may not be null.")
			}
			continue
		}
		if f.typ == fileType || (f.typ.Kind() == reflect.Pointer && f.typ.Elem() == fileType) {
			file := v.files[f.name]
			if file == nil {
				errs.Add(f.name, "The submitted data was not a file. Check the encoding type on the form.")
				continue
			}
			if f.typ.Kind() == reflect.Pointer {
				fv.Set(reflect.ValueOf(file))
			} else {
				fv.Set(reflect.ValueOf(*file))
			}
			continue
		}
		if msg := decodeValue(raw, fv); msg != "" {
			errs.Add(f.name, msg)
			continue
		}
		if msg := checkConstraints(f, fv); msg != "" {
			errs.Add(f.name, msg)
		}
	}
	var unknown []string
	for k := range v.raw {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		errs.Add(k, "Unexpected field")
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// decodeValue unmarshals raw into fv, accepting form strings for scalar and
// JSON-typed fields, and returns a DRF-like message on type mismatch.
func decodeValue(raw json.RawMessage, fv reflect.Value) string {
	t := fv.Type()
	base := t
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	if base == timeType {
		return decodeTime(raw, fv)
	}
	target := reflect.New(t)
	err := json.Unmarshal(raw, target.Interface())
	if err != nil && len(raw) > 0 && raw[0] == '"' && base.Kind() != reflect.String {
		// A form or string value for a non-string field: parse its content.
		var s string
		_ = json.Unmarshal(raw, &s)
		switch base.Kind() {
		case reflect.Bool:
			if b, ok := parseBool(s); ok {
				raw = json.RawMessage(strconv.FormatBool(b))
			}
		default:
			raw = json.RawMessage(s)
		}
		err = json.Unmarshal(raw, target.Interface())
	}
	if err != nil {
		return typeMessage(base, raw)
	}
	fv.Set(target.Elem())
	return ""
}

// decodeTime accepts the ISO 8601 forms DRF's DateTimeField does (date
// only, minutes without seconds, no zone meaning UTC), not only RFC 3339.
func decodeTime(raw json.RawMessage, fv reflect.Value) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return dateTimeMessage
	}
	tm, ok := ParseTime(strings.TrimSpace(s))
	if !ok {
		return dateTimeMessage
	}
	v := reflect.ValueOf(tm.UTC())
	for t := fv.Type(); t.Kind() == reflect.Pointer; t = t.Elem() {
		p := reflect.New(v.Type())
		p.Elem().Set(v)
		v = p
	}
	fv.Set(v)
	return ""
}

const dateTimeMessage = "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on", "t", "y":
		return true, true
	case "false", "0", "no", "off", "f", "n":
		return false, true
	}
	return false, false
}

func typeMessage(t reflect.Type, raw json.RawMessage) string {
	switch t.Kind() {
	case reflect.String:
		return "Not a valid string."
	case reflect.Bool:
		return "Must be a valid boolean."
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64, reflect.Int16:
		return "A valid integer is required."
	case reflect.Float32, reflect.Float64:
		return "A valid number is required."
	case reflect.Slice:
		return fmt.Sprintf("Expected a list of items but got type %q.", jsonKind(raw))
	case reflect.Map:
		return fmt.Sprintf("Expected a dictionary of items but got type %q.", jsonKind(raw))
	}
	return "Invalid value."
}

func checkConstraints(f fieldInfo, fv reflect.Value) string {
	for fv.Kind() == reflect.Pointer {
		if fv.IsNil() {
			return ""
		}
		fv = fv.Elem()
	}
	switch fv.Kind() {
	case reflect.String:
		s := fv.String()
		if len(f.enum) > 0 && !slices.Contains(f.enum, s) {
			return fmt.Sprintf("%q is not a valid choice.", s)
		}
		if f.minLen != nil && len(strings.TrimSpace(s)) < *f.minLen {
			if *f.minLen == 1 {
				return "This field may not be blank."
			}
			return fmt.Sprintf("Ensure this field has at least %d characters.", *f.minLen)
		}
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Float64, reflect.Float32:
		var x float64
		if fv.CanInt() {
			x = float64(fv.Int())
		} else {
			x = fv.Float()
		}
		if f.min != nil && x < *f.min {
			return fmt.Sprintf("Ensure this value is greater than or equal to %s.", strconv.FormatFloat(*f.min, 'f', -1, 64))
		}
		if f.max != nil && x > *f.max {
			return fmt.Sprintf("Ensure this value is less than or equal to %s.", strconv.FormatFloat(*f.max, 'f', -1, 64))
		}
	}
	return ""
}
