package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Stable error codes of the REST API. Clients may switch on them.
const (
	CodeBadRequest           = "bad_request"
	CodeInvalidConfiguration = "invalid_configuration"
	CodeNotFound             = "not_found"
	CodeConflict             = "conflict"
	CodeAlreadyExists        = "already_exists"
	CodeDeletionProtected    = "deletion_protected"
	CodeRetentionEnded       = "retention_ended"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodePayloadTooLarge      = "payload_too_large"
	CodeQuotaExceeded        = "quota_exceeded"
	CodeRateLimited          = "rate_limited"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal_error"
)

// Error is one API error; it is also a Go error, so services return it
// through their APIs and the gateway writes it unchanged.
type Error struct {
	Status int    `json:"-"`
	Code   string `json:"code"`
	Title  string `json:"title,omitempty"`
	Detail string `json:"detail"`
	// Pointer is the JSON pointer of the faulty body field, Parameter the
	// faulty query or path parameter.
	Pointer   string `json:"-"`
	Parameter string `json:"-"`
	// RetryAfter, in seconds, is sent as the Retry-After header.
	RetryAfter int `json:"-"`
	// More are further errors of the same request, found by the same
	// check (every invalid field of a body at once); the status and the
	// Go error are the first's.
	More []*Error `json:"-"`
}

// Join returns the errors as one: nil for none, else the first with the
// others in More.
func Join(errs ...*Error) error {
	errs = slices.DeleteFunc(errs, func(e *Error) bool { return e == nil })
	if len(errs) == 0 {
		return nil
	}
	first := *errs[0]
	first.More = append(slices.Clone(first.More), errs[1:]...)
	return &first
}

func (e *Error) Error() string {
	out := e.Code + ": " + e.Detail
	if e.Pointer != "" {
		out = fmt.Sprintf("%s: %s (at %s)", e.Code, e.Detail, e.Pointer)
	}
	for _, m := range e.More {
		if m.Pointer != "" {
			out += fmt.Sprintf("; %s (at %s)", m.Detail, m.Pointer)
		} else {
			out += "; " + m.Detail
		}
	}
	return out
}

// Errorf makes an Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Title: http.StatusText(status), Detail: fmt.Sprintf(format, args...)}
}

// Invalid is a 422 invalid_configuration at a body field.
func Invalid(pointer, format string, args ...any) *Error {
	e := Errorf(http.StatusUnprocessableEntity, CodeInvalidConfiguration, format, args...)
	e.Pointer = pointer
	return e
}

// NotFound is a 404 for a resource.
func NotFound(kind, id string) *Error {
	return Errorf(http.StatusNotFound, CodeNotFound, "%s %q not found", kind, id)
}

// ErrorItem is one element of the error body.
type ErrorItem struct {
	ID     string       `json:"id,omitempty"`
	Status string       `json:"status"`
	Code   string       `json:"code"`
	Title  string       `json:"title,omitempty"`
	Detail string       `json:"detail"`
	Source *ErrorSource `json:"source,omitempty"`
}

// ErrorSource locates the cause of an error in the request.
type ErrorSource struct {
	Pointer   string `json:"pointer,omitempty"`
	Parameter string `json:"parameter,omitempty"`
}

// ErrorBody is the body of every error response: {"errors":[…]}.
type ErrorBody struct {
	Errors []ErrorItem `json:"errors"`
}

// Body returns e as the error body.
func (e *Error) Body() ErrorBody {
	var body ErrorBody
	for _, e := range append([]*Error{e}, e.More...) {
		it := ErrorItem{Status: strconv.Itoa(e.Status), Code: e.Code, Title: e.Title, Detail: e.Detail}
		if e.Pointer != "" || e.Parameter != "" {
			it.Source = &ErrorSource{Pointer: e.Pointer, Parameter: e.Parameter}
		}
		body.Errors = append(body.Errors, it)
	}
	return body
}

// AsError returns err's *Error, or a 500 internal_error that does not leak
// err's text (it goes to the log instead).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Errorf(http.StatusInternalServerError, CodeInternal, "internal error; the request may be retried")
}

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

// Decode reads a JSON body into v strictly: unknown fields, wrong types,
// trailing data and oversized bodies are refused with an Error that points
// at the field.
func Decode(r io.Reader, v any) *Error {
	data, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "reading the body: %v", err)
	}
	if len(data) > MaxBodyBytes {
		return Errorf(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "the body exceeds %d bytes", MaxBodyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		e := decodeError(err)
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name = strings.Trim(name, `"`)
			if ptr := unknownField(data, reflect.TypeOf(v), name); ptr != "" {
				e.Pointer = ptr
			}
			if e.Pointer == "/"+name && underSpec(reflect.TypeOf(v), name) {
				e.Detail += fmt.Sprintf(`: it belongs under "spec", as in {"spec": {%q: …}}`, name)
			}
		}
		return e
	}
	// Decoder.More reports nothing more before a stray } or ]: what is
	// left after the value must be white space only.
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "the body holds data after its JSON value")
	}
	return nil
}

func decodeError(err error) *Error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		e := Errorf(http.StatusBadRequest, CodeBadRequest, "%s must be a JSON %s, not %s", fieldName(typeErr.Field), typeErr.Type.Kind(), typeErr.Value)
		e.Pointer = "/" + strings.ReplaceAll(typeErr.Field, ".", "/")
		return e
	case errors.As(err, &syntaxErr):
		return Errorf(http.StatusBadRequest, CodeBadRequest, "the body is not valid JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, CodeBadRequest, "the body is empty; a JSON object is expected")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		e := Errorf(http.StatusBadRequest, CodeBadRequest, "unknown field %q", f)
		e.Pointer = "/" + f
		return e
	}
	return Errorf(http.StatusBadRequest, CodeBadRequest, "the body is not valid: %s", strings.TrimPrefix(msg, "json: "))
}

func fieldName(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a failed write means the client went away
}

// WriteError writes e as the error body with its status.
func WriteError(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	WriteJSON(w, e.Status, e.Body())
}

// unknownField returns the JSON pointer of the field called name in data
// that t does not have. encoding/json names an unknown field without its
// path, and a client needs the path to find it.
func unknownField(data []byte, t reflect.Type, name string) string {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	return walkUnknown(v, t, "", name)
}

// underSpec reports whether t has a "spec" object with a field called
// name: a body sent flat that belongs under spec.
func underSpec(t reflect.Type, name string) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	spec, ok := jsonFields(t)["spec"]
	if !ok {
		return false
	}
	for spec.Kind() == reflect.Pointer {
		spec = spec.Elem()
	}
	if spec.Kind() != reflect.Struct {
		return false
	}
	_, ok = jsonFields(spec)[name]
	return ok
}

// jsonFields are a struct's fields by their JSON names.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		fields[cmp.Or(name, f.Name)] = f.Type
	}
	return fields
}

func walkUnknown(v any, t reflect.Type, path, name string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch val := v.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return ""
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(val))
		for k := range val {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				if k == name {
					return path + "/" + k
				}
				continue
			}
			if p := walkUnknown(val[k], ft, path+"/"+k, name); p != "" {
				return p
			}
		}
	case []any:
		if t.Kind() != reflect.Slice {
			return ""
		}
		for i, e := range val {
			if p := walkUnknown(e, t.Elem(), path+"/"+strconv.Itoa(i), name); p != "" {
				return p
			}
		}
	}
	return ""
}
