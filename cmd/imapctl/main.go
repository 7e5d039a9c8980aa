// Command imapctl is one binary for people who run mail: an IMAP server,
// a migrator, backups, and probes of mail hosts. See docs/ for each
// command.
package main

import (
	"os"

	"github.com/imapctl/imapctl/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
