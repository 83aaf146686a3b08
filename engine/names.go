package engine

import "fmt"

// maxMethodName is IoT Hub's limit on a method name's length.
const maxMethodName = 128

// checkMethodName enforces the names IoT Hub can deliver (iothub-protocol
// §4.4): 1 to 128 characters from ASCII letters, digits, "-" and "_". The
// name is an MQTT topic level and a property name, so "$ . / + # ?" and
// spaces are out, and we keep to the conservative set every SDK accepts.
func checkMethodName(name string) error {
	if name == "" {
		return fmt.Errorf("method name must not be empty")
	}
	if len(name) > maxMethodName {
		return fmt.Errorf("method name is %d characters long; IoT Hub allows at most %d", len(name), maxMethodName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("method name %q contains %q; use only letters, digits, \"-\" and \"_\"", name, string(rune(c)))
		}
	}
	return nil
}

// validEnvName reports whether s is a portable environment variable name.
func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
