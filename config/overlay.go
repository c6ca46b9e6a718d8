package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
)

// Overlay returns a copy of c with the keys of m applied on top, checked
// like a configuration file named source: an unknown key or a wrong type
// is an error naming the key and source. Maps merge key by key, as files
// do. The bridge uses it for each transport's own keys
// ("bridge.yaml transports.rabbit") over the shared configuration.
func (c *Config) Overlay(source string, m map[string]any) (*Config, error) {
	k := koanf.NewWithConf(koanf.Conf{Delim: delim})
	if err := k.Load(confmap.Provider(c.layer(), ""), nil); err != nil {
		return nil, fmt.Errorf("config: %s: %w", source, err)
	}
	l := &loader{k: k}
	l.merge(source, m)
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	nc, err := fromRaw(k.Raw())
	if err != nil {
		return nil, err
	}
	_, prefix := m["topic_prefix"]
	_, prefixRe := m["topic_prefix_re"]
	if prefix && !prefixRe {
		nc.TopicPrefixRe = regexp.QuoteMeta(nc.TopicPrefix) + `\.[^\W\d_]+`
	}
	if err := nc.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return nc, nil
}

// ReadFile parses one configuration file (.yaml, .yml, .toml or .json)
// into a generic tree without checking its keys, for files that hold more
// than fedmsg's keys (the bridge's transports and routes).
func ReadFile(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, invalidf("config: %v", err)
	}
	return parse(path, data)
}
