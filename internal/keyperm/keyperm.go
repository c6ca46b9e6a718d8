// Package keyperm warns about private key files that other users of the
// machine can read: whoever reads a signing key can sign as the service,
// and whoever reads a TLS client key can log in to the broker as it.
package keyperm

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// Loose reports whether the file at path is open to more users than its
// owner, with its permission bits. The rule is PostgreSQL's for its key
// file: no access at all for others, and the group may at most read,
// and only when root owns the file (the packaged layout: root:fedmsg
// 0640, so that the services in that group can sign). A file that cannot
// be stat'ed is not loose: reading it fails later with an error that
// names it.
func Loose(path string) (perm fs.FileMode, isLoose bool) {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return 0, false
	}
	perm = st.Mode().Perm()
	switch {
	case perm&0o007 != 0, perm&0o030 != 0:
		return perm, true
	case perm&0o040 != 0:
		return perm, !ownedByRoot(st)
	}
	return perm, false
}

func ownedByRoot(st fs.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && sys.Uid == 0
}

// warned holds the files already warned about, so a file checked by
// several parts of one process (the command and the library context it
// opens) is reported once.
var warned sync.Map

// Warn logs a warning naming the file and the configuration key it came
// from when the key file at path is Loose. It
// reports whether the file is loose. Each file is warned about once per
// process.
func Warn(log *slog.Logger, key, path string) bool {
	if path == "" {
		return false
	}
	perm, isLoose := Loose(path)
	if !isLoose {
		return false
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	if log == nil {
		return true
	}
	if _, dup := warned.LoadOrStore(abs, true); dup {
		return true
	}
	log.Warn("private key file is open to group or others: chmod 600 it (or 640 owned by root)",
		"file", path, "key", key, "mode", fmt.Sprintf("%04o", uint32(perm)))
	return true
}
