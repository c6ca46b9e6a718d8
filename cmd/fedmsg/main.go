// Command fedmsg is gofedmsg's single binary. Installed or linked under
// fedmsg's old names (fedmsg-relay, fedmsg-logger, fedmsg-tail,
// fedmsg-config) it runs that command.
package main

import (
	"os"

	"github.com/gofedmsg/fedmsg/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
