package fedmsg

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/keyperm"
)

// WarnKeyFiles logs a warning, naming the file and the key it came from,
// for every private key file cfg names that others can read or the group
// can write (a group-readable 0640 key owned by root is the packaged
// layout and passes; see keyperm.Loose):
// the x509 signing keys (<ssldir>/<certname>.key for each certnames
// entry), the gpg secret keyrings, and the STOMP and AMQP TLS client
// keys. Missing files are skipped: using one fails with its own error.
// Each file is warned about once per process. It reports the files
// found readable.
func WarnKeyFiles(cfg *config.Config, log *slog.Logger) []string {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var loose []string
	check := func(key, path string) {
		if keyperm.Warn(log, key, path) {
			loose = append(loose, path)
		}
	}
	names := make([]string, 0, len(cfg.Certnames))
	for index, name := range cfg.Certnames {
		if name != "" && !strings.ContainsRune(name, '/') {
			names = append(names, index+"\x00"+name)
		}
	}
	slices.Sort(names) // a stable order for the log
	for _, e := range names {
		index, name, _ := strings.Cut(e, "\x00")
		check("ssldir/certnames."+index, filepath.Join(cfg.SSLDir, name+".key"))
	}
	for _, f := range cfg.GPGSecretKeyring {
		check("gpg_secret_keyring", f)
	}
	check("stomp_ssl_key", cfg.StompSSLKey)
	check("amqp_ssl_key", cfg.AMQPSSLKey)
	return loose
}
