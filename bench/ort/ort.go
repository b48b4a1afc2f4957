//go:build ort

// Package ort runs exported ONNX models in ONNX Runtime 1.30 (CPU), the
// reference runtime rmprune's engine is compared against, and times them.
//
// It drives the shared library libonnxruntime.so.1 from the npm package
// onnxruntime-node through github.com/yalue/onnxruntime_go, which needs cgo:
// every file of the package carries the build tag ort, so the default binary
// stays pure Go. scripts/ort.sh fetches the library into the repository's
// .cache/ort/; the environment variable ORT_LIB names another copy.
//
//	ORT_LIB=$(scripts/ort.sh) go test -tags ort ./bench/ort/ ./nn/onnx/
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	rt "github.com/yalue/onnxruntime_go"
)

// Version is the ONNX Runtime release scripts/ort.sh fetches.
const Version = "1.30.0"

// ErrNoLibrary reports that ORT_LIB is unset and the default cache holds no
// library (run scripts/ort.sh).
var ErrNoLibrary = errors.New("ort: ONNX Runtime library not found (run scripts/ort.sh or set ORT_LIB)")

// LibPath returns the library to load: $ORT_LIB when set (it must exist),
// else the cache scripts/ort.sh fills: $ORT_CACHE, or .cache/ort/ in the
// repository holding the working directory.
func LibPath() (string, error) {
	if p := os.Getenv("ORT_LIB"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ort: ORT_LIB: %w", err)
		}
		return p, nil
	}
	rel := filepath.Join("onnxruntime-node-"+Version, "libonnxruntime.so.1")
	if c := os.Getenv("ORT_CACHE"); c != "" {
		p := filepath.Join(c, rel)
		if _, err := os.Stat(p); err != nil {
			return "", ErrNoLibrary
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("ort: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, ".cache", "ort", rel)
			if _, err := os.Stat(p); err != nil {
				return "", ErrNoLibrary
			}
			return p, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", ErrNoLibrary
		}
		dir = up
	}
}

var (
	initMu  sync.Mutex
	initErr error
	initLib string
)

// Init loads the library (see [LibPath]) and creates the runtime environment
// once per process; later calls return the first call's result. [Open] calls it.
func Init() error {
	initMu.Lock()
	defer initMu.Unlock()
	if initLib != "" || initErr != nil {
		return initErr
	}
	lib, err := LibPath()
	if err != nil {
		initErr = err
		return err
	}
	rt.SetSharedLibraryPath(lib)
	if err := rt.InitializeEnvironment(rt.WithLogLevelError()); err != nil {
		initErr = fmt.Errorf("ort: load %s: %w", lib, err)
		return initErr
	}
	initLib = lib
	return nil
}

// Library returns the path of the loaded library and the runtime's version
// string, or an error when [Init] failed.
func Library() (path, version string, err error) {
	if err := Init(); err != nil {
		return "", "", err
	}
	return initLib, rt.GetVersion(), nil
}
