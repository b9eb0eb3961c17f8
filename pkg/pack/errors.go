package pack

import (
	"fmt"
	"sort"
	"strings"
)

// Severity of a finding.
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Finding is one problem in a package, located by file, line and field.
type Finding struct {
	Severity Severity
	File     string
	Line     int
	Field    string
	Msg      string
}

func (f Finding) String() string {
	loc := f.File
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	if f.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, f.Field, f.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, f.Msg)
}

// Error is returned by Load when a package has errors: every error finding,
// sorted by file and line. Warnings travel with it for reporting.
type Error struct {
	Findings []Finding
	Warnings []Finding
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Findings))
	for i, f := range e.Findings {
		parts[i] = f.String()
	}
	return strings.Join(parts, "\n")
}

// collector gathers findings while loading.
type collector struct {
	findings []Finding
}

func (c *collector) errorf(file string, line int, field, format string, args ...any) {
	c.findings = append(c.findings, Finding{SeverityError, file, line, field, fmt.Sprintf(format, args...)})
}

func (c *collector) warnf(file string, line int, field, format string, args ...any) {
	c.findings = append(c.findings, Finding{SeverityWarning, file, line, field, fmt.Sprintf(format, args...)})
}

func (c *collector) split() (errs, warns []Finding) {
	sort.SliceStable(c.findings, func(i, j int) bool {
		a, b := c.findings[i], c.findings[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	for _, f := range c.findings {
		if f.Severity == SeverityError {
			errs = append(errs, f)
		} else {
			warns = append(warns, f)
		}
	}
	return errs, warns
}
