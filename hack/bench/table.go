package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

// samples is one measured series; its figures are the median, min and max.
type samples []float64

func (s samples) sorted() []float64 {
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	return c
}

// median returns the median, NaN for no samples.
func (s samples) median() float64 {
	c := s.sorted()
	switch {
	case len(c) == 0:
		return math.NaN()
	case len(c)%2 == 1:
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func (s samples) min() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return s.sorted()[0]
}

func (s samples) max() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return s.sorted()[len(s)-1]
}

func (s samples) sum() float64 {
	t := 0.0
	for _, v := range s {
		t += v
	}
	return t
}

// figure is a median with its spread.
type figure struct {
	Value float64 `json:"value"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	N     int     `json:"samples"`
}

func figureOf(s samples) figure {
	return figure{Value: s.median(), Min: s.min(), Max: s.max(), N: len(s)}
}

// single is a figure measured once (a total).
func single(v float64) figure { return figure{Value: v, Min: v, Max: v, N: 1} }

// Row is one line of the table and one object of the JSON array.
type Row struct {
	// Name is the machine name of the row (start, memory_pss, ...).
	Name string `json:"name"`
	// Label is what the table prints in the first column.
	Label string `json:"label"`
	figure
	Unit string `json:"unit"`
	// Baseline is the same measure of the baseline in the same run; nil
	// when the row has none or it could not be measured (see Note).
	Baseline    *figure  `json:"-"`
	BaselineVal *float64 `json:"baseline"`
	BaselineMin *float64 `json:"baseline_min,omitempty"`
	BaselineMax *float64 `json:"baseline_max,omitempty"`
	// BaselineName says what the baseline is.
	BaselineName string `json:"baseline_name,omitempty"`
	// Ratio is Value / Baseline.Value; nil without a baseline.
	Ratio *float64 `json:"ratio"`
	// Target is the target in words, "" for none.
	Target string `json:"target"`
	// Met says whether the target was met; nil when there is no target.
	Met *bool `json:"met"`
	// Note explains the figure; Error is set when the row failed.
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
}

// withBaseline fills the baseline fields and the ratio.
func (r *Row) withBaseline(name string, b figure) {
	r.Baseline, r.BaselineName = &b, name
	if b.N == 0 || math.IsNaN(b.Value) {
		return
	}
	v, lo, hi := b.Value, b.Min, b.Max
	r.BaselineVal, r.BaselineMin, r.BaselineMax = &v, &lo, &hi
	if b.Value != 0 && !math.IsNaN(r.Value) {
		ratio := r.Value / b.Value
		r.Ratio = &ratio
	}
}

func (r *Row) met(ok bool) { r.Met = &ok }

// failed marks a row that could not be measured.
func failed(name, label, unit, target string, err error) Row {
	r := Row{Name: name, Label: label, Unit: unit, Target: target, Error: err.Error()}
	r.figure = figure{Value: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	r.met(false)
	return r
}

// fmtNum prints v with a precision that suits its size.
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "-"
	case a >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtFigure(f figure, unit string) string {
	if f.N == 0 || math.IsNaN(f.Value) {
		return "-"
	}
	s := fmtNum(f.Value)
	if unit != "" {
		s += " " + unit
	}
	if f.N > 1 {
		s += " [" + fmtNum(f.Min) + "–" + fmtNum(f.Max) + "]"
	}
	return s
}

func yesNo(b *bool) string {
	switch {
	case b == nil:
		return "-"
	case *b:
		return "yes"
	}
	return "NO"
}

// cells returns the table's header and one line of cells per row.
func cells(rows []Row) [][]string {
	out := [][]string{{"row", "measured: median [min–max]", "baseline, same run", "ratio", "target", "met"}}
	for _, r := range rows {
		base := "none"
		if r.Baseline != nil {
			base = fmtFigure(*r.Baseline, r.Unit)
			if r.BaselineVal == nil {
				base = "n/a"
			}
			base += " (" + r.BaselineName + ")"
		}
		ratio := "-"
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2fx", *r.Ratio)
		}
		target := r.Target
		if target == "" {
			target = "-"
		}
		out = append(out, []string{r.Label, fmtFigure(r.figure, r.Unit), base, ratio, target, yesNo(r.Met)})
	}
	return out
}

// printTable writes the rows as one aligned table (or, with markdown, a
// Markdown table), then the notes and errors as a list.
func printTable(w io.Writer, rows []Row, markdown bool) {
	c := cells(rows)
	if markdown {
		for i, line := range c {
			fmt.Fprintln(w, "| "+strings.Join(line, " | ")+" |")
			if i == 0 {
				fmt.Fprintln(w, strings.Repeat("| --- ", len(line))+"|")
			}
		}
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, line := range c {
			fmt.Fprintln(tw, strings.Join(line, "\t"))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(w, "- %s: FAILED: %s\n", r.Label, r.Error)
		}
		if r.Note != "" {
			fmt.Fprintf(w, "- %s: %s\n", r.Label, r.Note)
		}
	}
}

// writeJSON writes the rows to path as a JSON array. NaN figures (a row
// that failed) are written as 0 with the row's error set.
func writeJSON(path string, rows []Row) error {
	clean := make([]Row, len(rows))
	for i, r := range rows {
		for _, p := range []*float64{&r.Value, &r.Min, &r.Max} {
			if math.IsNaN(*p) {
				*p = 0
			}
		}
		clean[i] = r
	}
	b, err := json.MarshalIndent(clean, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
