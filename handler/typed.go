package handler

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/simplerpc/simplerpc/codec"
)

// Validator is implemented by request types that check their own values. A
// typed callback's request is validated after decoding; return an
// [ArgumentValueError] to say what is wrong. Any other error becomes a
// failure as a callback's would: one that names no reason is sent as
// [ReasonInternal] and "internal error".
type Validator interface {
	Validate() error
}

// Handle registers a typed callback for opcode op: the frame's object is
// decoded into a T with go-json before fn runs. Decoding failures are
// answered without calling fn:
//   - a field tagged `simplerpc:"required"` that is absent: [ArgumentMissing]
//     with the original's message, "Expected argument 'name' in opcode N";
//   - a value of the wrong JSON type: [ArgumentTypeError];
//   - an object that is not valid JSON: [MalformedPayload], "JSON malformed
//     for opcode: N" (the engine dispatches only objects it has checked);
//   - a value a field's own UnmarshalJSON rejects: [ArgumentValueError];
//   - T (or *T) implementing [Validator] whose Validate fails: its error.
//
// For op [codec.OpFailure], T is typically [Error] or *Error, which decode
// the failure's reason and message; as for any failure callback, a
// decoding failure and fn's error are logged, not sent (see [Router.On]).
// It panics like [Router.On].
func Handle[T any](r *Router, op codec.Opcode, fn func(c Conn, req T) error) {
	if fn == nil {
		panic("handler: nil callback")
	}
	d := newDecoder[T](op)
	r.On(op, func(c Conn, data []byte) error {
		var req T
		if err := d.decode(data, &req); err != nil {
			return err
		}
		return fn(c, req)
	})
}

// HandleCall registers a typed answer to calls on opcode op: the request's
// object is decoded into Req as [Handle] does, and fn's Resp is encoded as
// the reply's object (Resp must encode as a JSON object: a struct or a
// map). A non-nil error is sent back as the call's failure. It panics like
// [Router.OnCall].
func HandleCall[Req, Resp any](r *Router, op codec.Opcode, fn func(c Conn, req Req) (Resp, error)) {
	if fn == nil {
		panic("handler: nil callback")
	}
	d := newDecoder[Req](op)
	r.OnCall(op, func(c Conn, data []byte) (any, error) {
		var req Req
		if err := d.decode(data, &req); err != nil {
			return nil, err
		}
		resp, err := fn(c, req)
		if err != nil {
			return nil, err
		}
		return resp, nil
	})
}

// decoder decodes one request type. The required fields are found once, by
// reflection, when the callback is registered.
type decoder[T any] struct {
	op       codec.Opcode
	required []string // JSON names of required fields
	// Which of *T and T may implement Validator, found once: asking the
	// value itself on every call would copy a struct T to the heap.
	ptrValidates, valValidates bool
}

func newDecoder[T any](op codec.Opcode) *decoder[T] {
	d := &decoder[T]{op: op}
	t := reflect.TypeFor[T]()
	validator := reflect.TypeFor[Validator]()
	d.ptrValidates = reflect.PointerTo(t).Implements(validator)
	// An interface T is asked at run time, for its dynamic value.
	d.valValidates = t.Kind() == reflect.Interface || t.Implements(validator)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct {
		for f := range t.Fields() {
			if f.Tag.Get("simplerpc") != "required" || !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			d.required = append(d.required, name)
		}
	}
	return d
}

func (d *decoder[T]) decode(data []byte, v *T) error {
	for _, name := range d.required {
		if !hasKey(data, name) {
			return ArgumentMissing(fmt.Sprintf("Expected argument '%s' in opcode %d", name, d.op))
		}
	}
	if err := codec.Unmarshal(data, v); err != nil {
		var te *codec.TypeError
		if errors.As(err, &te) {
			return ArgumentTypeError(fmt.Sprintf("Argument '%s' has the wrong type (%s) in opcode %d",
				te.Field, te.Value, d.op))
		}
		var me *codec.MalformedError
		if errors.As(err, &me) {
			return MalformedPayload(fmt.Sprintf("JSON malformed for opcode: %d", d.op))
		}
		return ArgumentValueError(fmt.Sprintf("Cannot decode opcode %d: %v", d.op, err))
	}
	if d.ptrValidates {
		if val, ok := any(v).(Validator); ok {
			return val.Validate()
		}
	}
	if d.valValidates {
		if val, ok := any(*v).(Validator); ok {
			return val.Validate()
		}
	}
	return nil
}

// hasKey reports whether the JSON object obj, already validated, has the
// top-level key name. Keys compare case-insensitively, as go-json and
// encoding/json match them to fields.
func hasKey(obj []byte, name string) bool {
	depth := 0
	expectKey := false
	for i := 0; i < len(obj); i++ {
		switch c := obj[i]; c {
		case '{', '[':
			depth++
			expectKey = depth == 1 && c == '{'
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			start := i + 1
			escaped := false
			for i++; i < len(obj) && obj[i] != '"'; i++ {
				if obj[i] == '\\' {
					escaped = true
					i++
				}
			}
			if expectKey {
				expectKey = false
				key := string(obj[start:i])
				if escaped {
					var s string
					if codec.Unmarshal(obj[start-1:i+1], &s) == nil {
						key = s
					}
				}
				if strings.EqualFold(key, name) {
					return true
				}
			}
		}
	}
	return false
}
