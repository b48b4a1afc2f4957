package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// fmtCount writes a count briefly: 950, 12.3k, 4.56M, 1.2G.
func fmtCount[T int | int64](n T) string {
	v := float64(n)
	switch a := math.Abs(v); {
	case a >= 1e9:
		return trim(v/1e9, 3) + "G"
	case a >= 1e6:
		return trim(v/1e6, 3) + "M"
	case a >= 1e4:
		return trim(v/1e3, 3) + "k"
	}
	return strconv.FormatInt(int64(n), 10)
}

// trim formats v with sig significant digits and no trailing zeros.
func trim(v float64, sig int) string {
	return strconv.FormatFloat(v, 'g', sig, 64)
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func fmtPct(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

func fmtMS(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 0.1:
		return fmt.Sprintf("%.1f µs", 1000*ms)
	}
	return fmt.Sprintf("%.3f ms", ms)
}

func fmtRatio(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

func fmtRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmtRatio(r)
	}
	return strings.Join(parts, ", ")
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func fmtSci(v float64) string { return strconv.FormatFloat(v, 'e', 1, 64) }

// fmtDelta is the relative change from a to b: "+11.2%".
func fmtDelta(a, b int64) string {
	if a == 0 {
		return ""
	}
	return fmt.Sprintf("%+.1f%%", 100*(float64(b)-float64(a))/float64(a))
}

func itoa[T int | int64](n T) string { return strconv.FormatInt(int64(n), 10) }
