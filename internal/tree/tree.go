// Package tree reads the generic values a YAML, JSON or TOML parser
// produces (map[string]any, []any, string, bool, int, int64, float64), for
// the configuration sections that config does not own: the bridge's
// transports, routes and settings, and the hub's consumers.
package tree

import "fmt"

// TypeName names v's kind for an error message: "a string", "a map", ...
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}

// Int returns v as an int when it is a whole number: an int, an int64 or
// an integral float64 (JSON has only floats). number reports whether v is
// a number at all, so a caller can tell "not a number" from "not whole".
func Int(v any) (n int, whole, number bool) {
	switch x := v.(type) {
	case int:
		return x, true, true
	case int64:
		return int(x), true, true
	case float64:
		if x != float64(int(x)) {
			return 0, false, true
		}
		return int(x), true, true
	}
	return 0, false, false
}
