package config

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// RedactedValue replaces a secret that is set, in Redacted and in every
// marshalled form of a Config.
const RedactedValue = "[redacted]"

// Redacted returns a copy of c with every secret that is set replaced by
// RedactedValue, and the user information of URLs (a NATS token or password
// in nats.url) replaced by "redacted". Lists and maps are copied.
func (c Config) Redacted() Config {
	r := c
	r.Filter.Categories = slices.Clone(c.Filter.Categories)
	r.ServiceNow.CategoryOverrides = maps.Clone(c.ServiceNow.CategoryOverrides)
	r.ServiceNow.ImpactOverrides = maps.Clone(c.ServiceNow.ImpactOverrides)
	for i := range leaves {
		lf := &leaves[i]
		if f := lf.field(&r); lf.secret && f.String() != "" {
			f.SetString(RedactedValue)
		}
	}
	r.NATS.URL = redactURLs(r.NATS.URL)
	r.ServiceNow.InstanceURL = redactURLs(r.ServiceNow.InstanceURL)
	r.IONIX.APIURL = redactURLs(r.IONIX.APIURL)
	return r
}

// redactURLs replaces the user information of each URL in a comma-separated
// list by "redacted". It works on the text, so it also covers URLs that do not
// parse.
func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			continue
		}
		authority := rest
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			authority = rest[:j]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			parts[i] = scheme + "://redacted" + rest[at:]
		}
	}
	return strings.Join(parts, ",")
}

// MarshalYAML renders c, redacted, with the file's section and key names and
// durations in Go syntax, so that the output loads back with Load.
func (c Config) MarshalYAML() (any, error) {
	r := c.Redacted()
	root := &yaml.Node{Kind: yaml.MappingNode}
	var sec *yaml.Node
	for i := range leaves {
		lf := &leaves[i]
		if sec == nil || root.Content[len(root.Content)-2].Value != lf.section {
			sec = &yaml.Node{Kind: yaml.MappingNode}
			root.Content = append(root.Content, strNode(lf.section), sec)
		}
		sec.Content = append(sec.Content, strNode(lf.name), valueNode(lf.field(&r)))
	}
	return root, nil
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func valueNode(v reflect.Value) *yaml.Node {
	switch x := v.Interface().(type) {
	case time.Duration:
		return strNode(formatDuration(x))
	case []string:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, s := range x {
			n.Content = append(n.Content, strNode(s))
		}
		return n
	case map[string]string:
		n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			n.Content = append(n.Content, strNode(k), strNode(x[k]))
		}
		return n
	case string:
		return strNode(x)
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Value: strconv.Itoa(x)}
	case float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Value: strconv.FormatFloat(x, 'g', -1, 64)}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Value: strconv.FormatBool(x)}
	}
	panic("config: unsupported type " + v.Type().String())
}

// formatDuration is d.String() without zero trailing units: 1h, 5m, 1h30m.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalJSON renders c, redacted, as a JSON object with the file's section
// and key names; durations are strings in Go syntax, as in the file.
func (c Config) MarshalJSON() ([]byte, error) {
	r := c.Redacted()
	var b bytes.Buffer
	b.WriteByte('{')
	cur := ""
	for i := range leaves {
		lf := &leaves[i]
		if lf.section != cur {
			if cur != "" {
				b.WriteString("},")
			}
			cur = lf.section
			b.WriteString(strconv.Quote(lf.section) + ":{")
		} else {
			b.WriteByte(',')
		}
		v := lf.field(&r).Interface()
		switch x := v.(type) {
		case time.Duration:
			v = formatDuration(x)
		case []string:
			if x == nil {
				v = []string{}
			}
		case map[string]string:
			if x == nil {
				v = map[string]string{}
			}
		}
		val, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		key, _ := json.Marshal(lf.name)
		b.Write(key)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteString("}}")
	return b.Bytes(), nil
}

// String renders c as redacted YAML.
func (c Config) String() string {
	out, err := yaml.Marshal(c)
	if err != nil {
		return "config: " + err.Error()
	}
	return string(out)
}

// GoString is String, so that %#v does not print secrets either.
func (c Config) GoString() string { return c.String() }
