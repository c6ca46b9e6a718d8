package gpg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// Armor block types that carry keys.
const (
	armorPublicKey  = "PGP PUBLIC KEY BLOCK"
	armorPrivateKey = "PGP PRIVATE KEY BLOCK"
)

// GnuPG home directory file names.
const (
	legacyPubring = "pubring.gpg" // GnuPG 1.x and 2.0 public keyring (OpenPGP packets)
	keyboxPubring = "pubring.kbx" // GnuPG 2.1+ keybox: not OpenPGP, go-crypto cannot read it
)

// notKeyFiles are *.gpg files a GnuPG home directory holds that are not key
// material for verification.
var notKeyFiles = map[string]bool{
	"trustdb.gpg": true, // ownertrust database
	"secring.gpg": true, // GnuPG 1.x secret keys; their public halves are in pubring.gpg
}

// maxKeyFile bounds what is read from one key file (a large keyring export is
// a few MiB; this only stops a wrong path from eating all memory).
const maxKeyFile = 256 << 20

// readKeyFile returns the OpenPGP entities (keys) in one file, armored or
// binary. Errors name the file. A file without any key is an error.
func readKeyFile(path string) (openpgp.EntityList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gpg: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("gpg: reading %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("gpg: %s: larger than %d bytes", path, maxKeyFile)
	}
	el, err := parseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("gpg: %s: %w", path, err)
	}
	return el, nil
}

// parseKeys reads every key in data: one or more concatenated ASCII-armored
// key blocks (public or private), or binary OpenPGP packets (an export or a
// legacy keyring, whose trust packets are skipped).
func parseKeys(data []byte) (openpgp.EntityList, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM some editors add
	if isArmored(data) {
		return parseArmoredKeys(data)
	}
	el, err := readKeyRing(data)
	if err != nil {
		return nil, fmt.Errorf("not an OpenPGP key file: %w", err)
	}
	return el, nil
}

// isArmored reports whether data is ASCII-armored rather than binary, the
// way GnuPG tells them apart: binary OpenPGP starts with a packet tag byte,
// which has its high bit set; otherwise the data is armored if it holds an
// armor header line (text before it, such as comments, is skipped).
func isArmored(data []byte) bool {
	if len(data) == 0 || data[0]&0x80 != 0 {
		return false
	}
	return bytes.Contains(data, []byte("-----BEGIN PGP "))
}

// parseArmoredKeys decodes each armored block of data separately (armor.Decode
// reads only the first one) and collects the keys of all of them.
func parseArmoredKeys(data []byte) (openpgp.EntityList, error) {
	var all openpgp.EntityList
	marker := []byte("-----BEGIN PGP ")
	for n := 1; ; n++ {
		start := bytes.Index(data, marker)
		if start < 0 {
			break
		}
		data = data[start:]
		end := bytes.Index(data[len(marker):], marker)
		block := data
		if end >= 0 {
			block, data = data[:len(marker)+end], data[len(marker)+end:]
		} else {
			data = nil
		}
		b, err := armor.Decode(bytes.NewReader(block))
		if err != nil {
			return nil, fmt.Errorf("armor block %d: %w", n, err)
		}
		if b.Type != armorPublicKey && b.Type != armorPrivateKey {
			return nil, fmt.Errorf("armor block %d is a %q, not a key block", n, b.Type)
		}
		body, err := io.ReadAll(b.Body) // also checks the armor checksum
		if err != nil {
			return nil, fmt.Errorf("armor block %d: %w", n, err)
		}
		el, err := readKeyRing(body)
		if err != nil {
			return nil, fmt.Errorf("armor block %d: %w", n, err)
		}
		all = append(all, el...)
	}
	if len(all) == 0 {
		return nil, errors.New("no key found in the armored text")
	}
	return all, nil
}

// readKeyRing parses binary key packets. go-crypto skips keys it cannot
// use; having none at all is an error.
func readKeyRing(data []byte) (el openpgp.EntityList, err error) {
	defer func() {
		if r := recover(); r != nil {
			el, err = nil, fmt.Errorf("OpenPGP parser failed: %v", r)
		}
	}()
	el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if len(el) == 0 {
		return nil, errors.New("no key found")
	}
	return el, nil
}

// readKeyPath reads a file, or a directory as a GnuPG home or a folder of
// exported keys (see LoadKeyring).
func readKeyPath(path string) (openpgp.EntityList, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("gpg: %w", err)
	}
	if !fi.IsDir() {
		return readKeyFile(path)
	}
	files, err := keyFilesInDir(path)
	if err != nil {
		return nil, err
	}
	var all openpgp.EntityList
	for _, f := range files {
		el, err := readKeyFile(f)
		if err != nil {
			return nil, err
		}
		all = append(all, el...)
	}
	return all, nil
}

// keyFilesInDir lists the key files LoadKeyring reads from a directory:
// pubring.gpg first, then every other *.asc and *.gpg file in name order,
// except GnuPG's trustdb.gpg and secring.gpg.
func keyFilesInDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("gpg: %w", err)
	}
	var (
		files               []string
		hasLegacy, hasKeybx bool
	)
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == keyboxPubring:
			hasKeybx = true
			continue
		case name == legacyPubring:
			hasLegacy = true
		case notKeyFiles[name]:
			continue
		case !strings.HasSuffix(name, ".asc") && !strings.HasSuffix(name, ".gpg"):
			continue
		}
		// Follow symlinks; skip directories, sockets and the like.
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		files = append(files, name)
	}
	if hasKeybx && hasLegacy {
		// GnuPG 2.1+ uses pubring.kbx whenever it exists and leaves the
		// pubring.gpg it migrated from untouched: trusting that copy could
		// accept keys that were deleted since.
		return nil, fmt.Errorf("gpg: %s holds both %s and %s: GnuPG 2.1+ uses the keybox and "+
			"%s is probably stale; export the keys instead (`gpg --homedir %s --export > keys.gpg`) "+
			"and load that file", dir, keyboxPubring, legacyPubring, legacyPubring, dir)
	}
	if len(files) == 0 {
		if hasKeybx {
			return nil, fmt.Errorf("gpg: %s holds only a GnuPG 2.1+ keybox (%s), which cannot be read "+
				"without gpg: export the keys (`gpg --homedir %s --export > keys.gpg`) and load that file",
				dir, keyboxPubring, dir)
		}
		return nil, fmt.Errorf("gpg: %s: no key files (looked for %s, *.asc, *.gpg)", dir, legacyPubring)
	}
	sort.Slice(files, func(i, j int) bool {
		if (files[i] == legacyPubring) != (files[j] == legacyPubring) {
			return files[i] == legacyPubring
		}
		return files[i] < files[j]
	})
	for i, f := range files {
		files[i] = filepath.Join(dir, f)
	}
	return files, nil
}
