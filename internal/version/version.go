// Package version names the running rmprune build: a release version set
// with -ldflags "-X github.com/rmprune/rmprune/internal/version.Release=v1.2.3",
// else the VCS revision the binary was built from ("dev-<rev>[-dirty]"),
// else "dev".
package version

import "runtime/debug"

// Release is set at link time for release builds.
var Release = ""

// String returns the build's version.
func String() string {
	if Release != "" {
		return Release
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	rev, dirty := "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		return "dev-" + rev + dirty
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return "dev"
}
