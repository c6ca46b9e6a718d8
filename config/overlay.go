package config

import (
	"errors"
	"fmt"
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
