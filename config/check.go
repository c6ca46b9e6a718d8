package config

// Problem is one problem Check found with one key.
type Problem struct {
	// Key is the key at fault; for an entry of a map key it is
	// key.entry (endpoints.bodhi).
	Key string
	// Unknown is true when gofedmsg does not know Key (Load refuses the
	// file); otherwise the value has the wrong type.
	Unknown bool
	p       keyProblem
}

// Err is the problem worded as Load reports it, naming source. A secret
// value is never part of it.
func (p Problem) Err(source string) error { return p.p.format(source) }

// Check checks m, the content of one configuration file, the way Load
// checks a file before merging it, for tools that read configuration from
// elsewhere (`fedmsg config convert` reads Python fedmsg files). It
// returns the keys to keep, each known or open-ended key with its value
// normalised and nested spellings of dotted keys made flat, and one Problem
// for every unknown key and every value of the wrong type, in key order.
// Value ranges and choices are not checked here: Load's validation does.
func Check(m map[string]any) (map[string]any, []Problem) {
	var c checker
	out := c.file(m)
	problems := make([]Problem, 0, len(c.problems))
	for _, kp := range c.problems {
		problems = append(problems, Problem{Key: kp.key, Unknown: kp.unknown, p: kp})
	}
	return out, problems
}
