package web

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/a-h/templ"
)

func widthCSS(pct float64) templ.SafeCSS {
	return templ.SafeCSS(fmt.Sprintf("width:%.2f%%", min(max(pct, 0), 100)))
}

func posCSS(left, top float64) templ.SafeCSS {
	return templ.SafeCSS(fmt.Sprintf("left:%.3f%%;top:%.3f%%", left, top))
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func statusText(code int) string { return http.StatusText(code) }
