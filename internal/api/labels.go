package api

import (
	"fmt"
	"net/http"
	"strings"
	"unicode"
)

// Labels are Pulp's pulp_labels: string values under keys of letters,
// digits, '_', ' ', '.' and '-'. This file holds what every labelled
// resource shares: validation, the pulp_label_select filter and the
// set_label/unset_label actions.

// ValidLabelKey reports whether k is a valid label key.
func ValidLabelKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !isLabelKeyRune(r) {
			return false
		}
	}
	return true
}

// isLabelKeyRune matches Python's [\w .\-] on str patterns, where \w is
// any Unicode letter or number and '_'.
func isLabelKeyRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_' || r == ' ' || r == '.' || r == '-'
}

// labelProblems lists what is wrong with labels, in key order.
func labelProblems(labels map[string]string) []string {
	var msgs []string
	for _, k := range sortedKeys(labels) {
		if !ValidLabelKey(k) {
			msgs = append(msgs, fmt.Sprintf("Key '%s' contains invalid characters. Only alphanumerics, underscores, spaces, hyphens, and dots are allowed.", k))
			continue
		}
		// Parentheses are reserved by the label filter syntax of Pulp's
		// complex filtering (q=), so values may not contain them.
		if strings.ContainsAny(labels[k], "()") {
			msgs = append(msgs, fmt.Sprintf("Key '%s' contains value with parenthesis.", k))
		}
	}
	return msgs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return sortedStrings(keys)
}

// ValidateLabels checks a pulp_labels value; the errors are keyed
// "pulp_labels" as Pulp reports them.
func ValidateLabels(labels map[string]string) FieldErrors {
	if msgs := labelProblems(labels); len(msgs) > 0 {
		return FieldErrors{"pulp_labels": msgs}
	}
	return nil
}

// LabelSelect adds to q the conditions of a pulp_label_select expression
// over the JSON labels in column. Terms are separated by commas (a value
// may contain an escaped "\,") and all must hold:
//
//	key       the label is set
//	!key      the label is not set
//	key=v     the label equals v (v may be empty)
//	key!=v    the label is set to something other than v
//	key~v     the label contains v, ignoring case
//
// jsonField renders the backend's extraction of one key's text from column
// (store.Store.JSONText), NULL when the key is absent.
func LabelSelect(q *Query, column, expr string, jsonField func(col, key string) string) error {
	for _, term := range splitUnescaped(expr) {
		key, op, val, problem := parseLabelTerm(term)
		if problem != "" {
			return FieldErrors{"pulp_label_select": {problem}}
		}
		switch op {
		case "":
			if neg, ok := strings.CutPrefix(key, "!"); ok {
				q.Where(jsonField(column, neg) + " IS NULL")
			} else {
				q.Where(jsonField(column, key) + " IS NOT NULL")
			}
		case "=":
			q.Where(jsonField(column, key)+" = ?", val)
		case "!=":
			f := jsonField(column, key)
			q.Where(f+" IS NOT NULL AND "+f+" <> ?", val)
		case "~":
			q.Where("LOWER("+jsonField(column, key)+`) LIKE LOWER(?) ESCAPE '\'`, "%"+likeEscape(val)+"%")
		}
	}
	return nil
}

// splitUnescaped splits s at commas not preceded by a backslash.
func splitUnescaped(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ',' && (i == 0 || s[i-1] != '\\') {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// parseLabelTerm splits one term into key (with its "!" if negated),
// operator and value, as Pulp's pattern (!?KEYCHARS+)(=|!=|~)?(.*) does.
// Unlike Pulp, text after a bare key is an error rather than ignored.
// problem is the 400 message for a malformed term.
func parseLabelTerm(term string) (key, op, val, problem string) {
	rest := term
	neg := strings.HasPrefix(rest, "!")
	if neg {
		rest = rest[1:]
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return !isLabelKeyRune(r) })
	if end < 0 {
		end = len(rest)
	}
	if end == 0 {
		return "", "", "", fmt.Sprintf("Invalid search term: '%s'.", term)
	}
	key, rest = rest[:end], rest[end:]
	switch {
	case strings.HasPrefix(rest, "!="):
		op, val = "!=", rest[2:]
	case strings.HasPrefix(rest, "="), strings.HasPrefix(rest, "~"):
		op, val = rest[:1], rest[1:]
	case rest != "":
		return "", "", "", fmt.Sprintf("Invalid search term: '%s'.", term)
	}
	if neg {
		if op != "" {
			return "", "", "", fmt.Sprintf("Cannot use an operator with '!%s'.", key)
		}
		key = "!" + key
	}
	return key, op, strings.ReplaceAll(val, `\,`, ","), ""
}

// LabelSelectFilter is the pulp_label_select filter over the JSON labels
// in column, for a FilterSet.
func LabelSelectFilter(column string, jsonField func(col, key string) string) Filter {
	return Filter{
		Name: "pulp_label_select", Kind: Custom, Lookups: []string{""}, Doc: "Filter labels by search string",
		Apply: func(q *Query, _, v string) error { return LabelSelect(q, column, v, jsonField) },
	}
}

// SetLabel is the body of a set_label action.
type SetLabel struct {
	Key   string  `json:"key" api:"required" minlen:"1"`
	Value *string `json:"value" api:"required,nullable"`
}

// SetLabelResponse is the answer of a set_label action.
type SetLabelResponse struct {
	Key   string  `json:"key" api:"required"`
	Value *string `json:"value" api:"required,nullable"`
}

// UnsetLabel is the body of an unset_label action.
type UnsetLabel struct {
	Key string `json:"key" api:"required" minlen:"1"`
}

// UnsetLabelResponse is the answer of an unset_label action: the key and
// the value it had.
type UnsetLabelResponse struct {
	Key   string  `json:"key" api:"required"`
	Value *string `json:"value" api:"readonly"`
}

// LabelActions describes the set_label and unset_label actions of one
// labelled resource type.
type LabelActions struct {
	// OperationPrefix precedes "_set_label"/"_unset_label", e.g.
	// "remotes_file_file".
	OperationPrefix string
	// Detail is the detail path with its {pulp_id} wildcard.
	Detail string
	// Href is the href parameter name, e.g. "file_file_remote_href".
	Href string
	Tag  string
	// Status is 201 on viewsets that create (repositories, remotes,
	// content) and 200 elsewhere, as Pulp answers.
	Status int
	// Modify changes the labels of the resource with id through fn,
	// atomically (store.Store.ModifyLabels). A missing resource is
	// store.ErrNotFound.
	Modify func(c *Ctx, id string, fn func(labels map[string]string) error) error
}

// Routes returns the two action routes.
func (la LabelActions) Routes() []*Route {
	status := la.Status
	if status == 0 {
		status = http.StatusCreated
	}
	return []*Route{
		{OperationID: la.OperationPrefix + "_set_label", Method: http.MethodPost, Path: la.Detail + "set_label/", Href: la.Href,
			Tag: la.Tag, Summary: "Set a label", Body: &SetLabel{}, Response: SetLabelResponse{}, Status: status,
			Handle: func(c *Ctx) (any, error) {
				b := Body[SetLabel](c)
				val := ""
				if b.Value != nil {
					val = *b.Value
				}
				if msgs := labelProblems(map[string]string{b.Key: val}); len(msgs) > 0 {
					return nil, FieldErrors{"non_field_errors": msgs}
				}
				err := la.Modify(c, c.PathValue("pulp_id"), func(labels map[string]string) error {
					labels[b.Key] = val
					return nil
				})
				if err != nil {
					return nil, err
				}
				return SetLabelResponse{Key: b.Key, Value: b.Value}, nil
			}},
		{OperationID: la.OperationPrefix + "_unset_label", Method: http.MethodPost, Path: la.Detail + "unset_label/", Href: la.Href,
			Tag: la.Tag, Summary: "Unset a label", Body: &UnsetLabel{}, Response: UnsetLabelResponse{}, Status: status,
			Handle: func(c *Ctx) (any, error) {
				b := Body[UnsetLabel](c)
				var old string
				err := la.Modify(c, c.PathValue("pulp_id"), func(labels map[string]string) error {
					v, ok := labels[b.Key]
					if !ok {
						return FieldError("key", fmt.Sprintf("Label '%s' is not set on the object.", b.Key))
					}
					old = v
					delete(labels, b.Key)
					return nil
				})
				if err != nil {
					return nil, err
				}
				return UnsetLabelResponse{Key: b.Key, Value: &old}, nil
			}},
	}
}
