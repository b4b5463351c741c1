package sites

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
)

// decodeInto sets out (a pointer) from v, a merged map whose values the schema
// check has already made the right kinds: mappings for structs and maps, lists
// for slices, numbers, booleans and text. Struct fields are named by their
// mapstructure tags. Anything else is an error naming the key.
func decodeInto(path string, out reflect.Value, v any) error {
	if v == nil {
		return nil
	}
	if out.Kind() == reflect.Pointer {
		if out.IsNil() {
			out.Set(reflect.New(out.Type().Elem()))
		}
		return decodeInto(path, out.Elem(), v)
	}
	if out.CanAddr() {
		if u, ok := out.Addr().Interface().(encoding.TextUnmarshaler); ok {
			s, isStr := v.(string)
			if !isStr {
				return fmt.Errorf("%s: is %s, not text", path, describe(path, v))
			}
			if err := u.UnmarshalText([]byte(s)); err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
			return nil
		}
	}
	switch out.Kind() {
	case reflect.Struct:
		return decodeStruct(path, out, v)
	case reflect.Map:
		return decodeMap(path, out, v)
	case reflect.Slice:
		return decodeSlice(path, out, v)
	case reflect.Interface:
		out.Set(reflect.ValueOf(v))
		return nil
	}
	return decodeScalar(path, out, v)
}

func decodeStruct(path string, out reflect.Value, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: is %s, not a mapping", path, describe(path, v))
	}
	t := out.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := fieldTag(t.Field(i))
		if tag == "" {
			continue
		}
		if sub, ok := m[tag]; ok {
			if err := decodeInto(join(path, tag), out.Field(i), sub); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeMap(path string, out reflect.Value, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: is %s, not a mapping", path, describe(path, v))
	}
	if out.IsNil() {
		out.Set(reflect.MakeMapWithSize(out.Type(), len(m)))
	}
	for k, sub := range m {
		ev := reflect.New(out.Type().Elem()).Elem()
		if err := decodeInto(join(path, k), ev, sub); err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(k), ev)
	}
	return nil
}

func decodeSlice(path string, out reflect.Value, v any) error {
	l, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s: is %s, not a list", path, describe(path, v))
	}
	s := reflect.MakeSlice(out.Type(), len(l), len(l))
	for i, e := range l {
		if err := decodeInto(fmt.Sprintf("%s[%d]", path, i), s.Index(i), e); err != nil {
			return err
		}
	}
	out.Set(s)
	return nil
}

// decodeScalar sets text, whole numbers, numbers and booleans.
func decodeScalar(path string, out reflect.Value, v any) error {
	switch out.Kind() {
	case reflect.String:
		switch x := v.(type) {
		case string:
			out.SetString(x)
		case map[string]any, []any:
			return fmt.Errorf("%s: is %s, not text", path, describe(path, v))
		default:
			out.SetString(fmt.Sprint(x))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		switch x := v.(type) {
		case int:
			out.SetInt(int64(x))
		case string:
			n, err := strconv.Atoi(x)
			if err != nil {
				return fmt.Errorf("%s: is %s, not a whole number", path, describe(path, v))
			}
			out.SetInt(int64(n))
		default:
			return fmt.Errorf("%s: is %s, not a whole number", path, describe(path, v))
		}
	case reflect.Float64, reflect.Float32:
		switch x := v.(type) {
		case float64:
			out.SetFloat(x)
		case int:
			out.SetFloat(float64(x))
		default:
			return fmt.Errorf("%s: is %s, not a number", path, describe(path, v))
		}
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("%s: is %s; allowed: true, false", path, describe(path, v))
		}
		out.SetBool(b)
	default:
		return fmt.Errorf("%s: cannot hold %s", path, describe(path, v))
	}
	return nil
}
