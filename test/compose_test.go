package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gofedmsg/fedmsg/bridge"
	"github.com/gofedmsg/fedmsg/config"
)

// No Docker engine runs on these machines, so docker-compose.yml cannot be
// started here; what can be checked is that Compose accepts it, that every
// service the others wait for has a health check, and that the fedmsg
// configurations it mounts load.
func TestComposeFileIsValid(t *testing.T) {
	compose, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose is needed to validate docker-compose.yml (Debian package docker-compose; make test installs it): %v", err)
	}
	file := filepath.Join("..", "docker-compose.yml")
	out, err := exec.Command(compose, "-f", file, "config").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var resolved struct {
		Services map[string]struct {
			Build       any            `yaml:"build"`
			Healthcheck map[string]any `yaml:"healthcheck"`
			DependsOn   map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &resolved); err != nil {
		t.Fatalf("docker-compose config printed no YAML: %v\n%s", err, out)
	}
	for _, want := range []string{"rabbitmq", "activemq", "relay", "bridge", "publisher"} {
		if _, ok := resolved.Services[want]; !ok {
			t.Errorf("no %s service", want)
		}
	}
	for name, svc := range resolved.Services {
		for dep, d := range svc.DependsOn {
			if d.Condition == "service_healthy" && resolved.Services[dep].Healthcheck == nil {
				t.Errorf("%s waits for %s to be healthy, but %s has no health check", name, dep, dep)
			}
		}
	}
	for _, ours := range []string{"relay", "bridge", "publisher"} {
		if resolved.Services[ours].Build == nil {
			t.Errorf("%s is not built from the Dockerfile", ours)
		}
	}
}

func TestDockerfileRunsAsAnUnprivilegedUser(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllSubmatch(data, -1)
	if len(users) == 0 || string(users[len(users)-1][1]) == "root" || string(users[len(users)-1][1]) == "0" {
		t.Errorf("the final stage must run as a non-root USER, found %q", users)
	}
	if n := len(regexp.MustCompile(`(?m)^FROM\s`).FindAll(data, -1)); n < 2 {
		t.Errorf("the Dockerfile has %d stages, want a multi-stage build", n)
	}
}

func TestComposeConfigurationsLoad(t *testing.T) {
	for _, name := range []string{"relay.yaml", "client.yaml"} {
		path, _ := filepath.Abs(filepath.Join("..", "configs", "compose", name))
		cfg, err := config.Load(config.Sources{Dirs: []string{}, Files: []string{path}, Environ: []string{}})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The bridge's file: transports and routes the bridge accepts, and
	// transport keys fedmsg knows.
	path := filepath.Join("..", "configs", "compose", "bridge.yaml")
	raw, err := config.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bridge.DecodeConfig(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for name, tc := range bc.Transports {
		if _, err := config.Default().Overlay("transports."+name, tc.Options); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	if len(bc.Routes) == 0 {
		t.Errorf("%s has no routes", path)
	}
}
