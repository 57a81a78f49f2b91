package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// The CLI reference in docs/cli is generated from the command tree by
// renderDocs ('make docs', through the gendocs build tag, writes it;
// TestDocsCurrent fails when it is stale). It is written here rather than
// with cobra/doc, which would add go-md2man, blackfriday and yaml to
// go.mod for some 80 lines of Markdown.

// renderDocs returns one Markdown page per command of root, keyed by file
// name: tether.md, tether_run.md, tether_completion_bash.md...
func renderDocs(root *cobra.Command) map[string][]byte {
	pages := map[string][]byte{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "gendocs" {
			return
		}
		pages[docFile(c)] = renderPage(c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return pages
}

// docFile is the page name of c: its command path with underscores.
func docFile(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
}

func renderPage(c *cobra.Command) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n\n%s\n\n", c.CommandPath(), c.Short)
	if c.Long != "" {
		fmt.Fprintf(&b, "%s\n\n", strings.TrimSpace(indentBlocks(c.Long)))
	}
	if c.Runnable() {
		fmt.Fprintf(&b, "## Usage\n\n```\n%s\n```\n\n", c.UseLine())
	}
	if len(c.Aliases) > 0 {
		fmt.Fprintf(&b, "Aliases: `%s`\n\n", strings.Join(c.Aliases, "`, `"))
	}
	if c.Example != "" {
		fmt.Fprintf(&b, "## Examples\n\n```\n%s\n```\n\n", strings.TrimRight(c.Example, "\n"))
	}
	if fs := c.NonInheritedFlags(); fs.HasAvailableFlags() {
		fmt.Fprintf(&b, "## Flags\n\n```\n%s```\n\n", fs.FlagUsages())
	}
	if fs := c.InheritedFlags(); fs.HasAvailableFlags() {
		fmt.Fprintf(&b, "## Global flags\n\n```\n%s```\n\n", fs.FlagUsages())
	}
	var see []string
	if c.HasParent() {
		p := c.Parent()
		see = append(see, fmt.Sprintf("- [%s](%s): %s", p.CommandPath(), docFile(p), p.Short))
	}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() || sub.Name() == "help" {
			see = append(see, fmt.Sprintf("- [%s](%s): %s", sub.CommandPath(), docFile(sub), sub.Short))
		}
	}
	if len(see) > 0 {
		fmt.Fprintf(&b, "## See also\n\n%s\n", strings.Join(see, "\n"))
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// indentBlocks keeps a Long text's indented lines (tables of options)
// as they are by making them a code block.
func indentBlocks(s string) string {
	var out []string
	inBlock := false
	for _, line := range strings.Split(s, "\n") {
		indented := strings.HasPrefix(line, "  ")
		if indented != inBlock {
			out = append(out, "```")
			inBlock = indented
		}
		out = append(out, line)
	}
	if inBlock {
		out = append(out, "```")
	}
	return strings.Join(out, "\n")
}

// docsRoot builds the command tree with the built-in defaults, whatever
// $TETHER_ROOT and $TETHER_RUNTIME say, so the pages do not depend on who
// generates them.
func docsRoot() *cobra.Command {
	for _, k := range []string{"TETHER_ROOT", "TETHER_RUNTIME"} {
		os.Unsetenv(k)
	}
	return newRoot(&globals{stdout: os.Stdout, stderr: os.Stderr})
}

// writeDocs replaces the pages in dir with the current ones.
func writeDocs(dir string) error {
	pages := renderDocs(docsRoot())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "tether*.md"))
	for _, f := range old {
		if _, ok := pages[filepath.Base(f)]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, data := range pages {
		if err := os.WriteFile(filepath.Join(dir, name), append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
