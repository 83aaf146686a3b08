package iothub

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// MethodsSubscription is the topic filter a device subscribes to for direct
// method requests (§4.1).
const MethodsSubscription = "$iothub/methods/POST/#"

const (
	methodRequestPrefix  = "$iothub/methods/POST/"
	methodResponsePrefix = "$iothub/methods/res/"
	ridPrefix            = "?$rid="
)

// ErrTopic is wrapped by every topic and username parse error.
var ErrTopic = errors.New("not an IoT Hub method topic")

// ClientID is the MQTT client id of an identity: "device" or "device/module".
func ClientID(device, module string) string {
	if module == "" {
		return device
	}
	return device + "/" + module
}

// SplitClientID is the inverse of ClientID.
func SplitClientID(clientID string) (device, module string) {
	device, module, _ = strings.Cut(clientID, "/")
	return device, module
}

// Username is the MQTT username (§3.2):
// "{host}/{clientID}/?api-version={APIVersion}[&DeviceClientType={enc}]".
// Host and client id are not encoded; query values are.
func Username(host, clientID, deviceClientType string) string {
	u := host + "/" + clientID + "/?api-version=" + APIVersion
	if deviceClientType != "" {
		u += "&DeviceClientType=" + url.QueryEscape(deviceClientType)
	}
	return u
}

// UsernameInfo is a parsed MQTT username.
type UsernameInfo struct {
	Host     string
	ClientID string
	Query    url.Values // api-version, DeviceClientType, model-id, ...
}

// ParseUsername parses "{host}/{clientID}/?{query}" and the older form
// without '?' ("{host}/{clientID}/api-version=..."). The query must carry
// api-version: without it the real hub does not deliver methods (§3.2).
func ParseUsername(u string) (UsernameInfo, error) {
	var info UsernameInfo
	host, rest, ok := strings.Cut(u, "/")
	if !ok || host == "" {
		return info, fmt.Errorf("%w: username has no host", ErrTopic)
	}
	i := strings.Index(rest, "/?")
	skip := 2
	if i < 0 {
		i = strings.Index(rest, "/api-version=")
		skip = 1
	}
	if i <= 0 {
		return info, fmt.Errorf("%w: username lacks \"/?api-version=\"", ErrTopic)
	}
	q, err := url.ParseQuery(rest[i+skip:])
	if err != nil {
		return info, fmt.Errorf("%w: username query: %w", ErrTopic, err)
	}
	if q.Get("api-version") == "" {
		return info, fmt.Errorf("%w: username lacks api-version", ErrTopic)
	}
	return UsernameInfo{Host: host, ClientID: rest[:i], Query: q}, nil
}

// MethodRequestTopic is the topic a hub publishes a method request on (§4.2).
func MethodRequestTopic(method, rid string) string {
	return methodRequestPrefix + method + "/" + ridPrefix + rid
}

// ParseMethodRequestTopic splits "$iothub/methods/POST/{method}/?$rid={rid}".
// The method name is returned undecoded (as the C, C# and Node SDKs do); the
// rid is opaque and ends at an optional '&' (Node tolerates extra properties).
func ParseMethodRequestTopic(topic string) (method, rid string, err error) {
	rest, ok := strings.CutPrefix(topic, methodRequestPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: no %q prefix", ErrTopic, methodRequestPrefix)
	}
	method, props, ok := strings.Cut(rest, "/")
	if !ok || method == "" {
		return "", "", fmt.Errorf("%w: no method name", ErrTopic)
	}
	if rid, err = parseRID(props); err != nil {
		return "", "", err
	}
	return method, rid, nil
}

// MethodResponseTopic is the topic a device publishes its reply on (§4.3).
func MethodResponseTopic(status int, rid string) string {
	return methodResponsePrefix + strconv.Itoa(status) + "/" + ridPrefix + rid
}

// IsMethodResponseTopic reports whether topic is in the method-response
// namespace, valid or not.
func IsMethodResponseTopic(topic string) bool { return strings.HasPrefix(topic, methodResponsePrefix) }

// ParseMethodResponseTopic splits "$iothub/methods/res/{status}/?$rid={rid}".
func ParseMethodResponseTopic(topic string) (status int, rid string, err error) {
	rest, ok := strings.CutPrefix(topic, methodResponsePrefix)
	if !ok {
		return 0, "", fmt.Errorf("%w: no %q prefix", ErrTopic, methodResponsePrefix)
	}
	s, props, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, "", fmt.Errorf("%w: no status", ErrTopic)
	}
	status, err = strconv.Atoi(s)
	if err != nil {
		return 0, "", fmt.Errorf("%w: status %q is not an integer", ErrTopic, s)
	}
	if rid, err = parseRID(props); err != nil {
		return 0, "", err
	}
	return status, rid, nil
}

func parseRID(props string) (string, error) {
	rest, ok := strings.CutPrefix(props, ridPrefix)
	if !ok {
		return "", fmt.Errorf("%w: no %q", ErrTopic, ridPrefix)
	}
	rid, _, _ := strings.Cut(rest, "&")
	if rid == "" {
		return "", fmt.Errorf("%w: empty $rid", ErrTopic)
	}
	return rid, nil
}

// ValidMethodName reports whether name can be a method name: 1..128
// US-ASCII printable characters, none of them a topic separator or wildcard,
// '$', '?', space or one of the characters the docs exclude (§4.4).
func ValidMethodName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`$()<>@,;:\"/[]?={}+#`, c) >= 0 {
			return false
		}
	}
	return true
}
