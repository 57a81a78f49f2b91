// Package crilog owns Tether's on-disk container output log: the
// Kubernetes CRI log format, its size-based rotation, exact decoding, and
// following a log while it is written.
//
// Each line of a log file is one entry:
//
//	<RFC 3339 time with nanoseconds, UTC> <stdout|stderr> <P|F> <text>\n
//
// for example
//
//	2024-05-01T12:00:00.123456789Z stdout F hello, world
//
// The text may hold any byte except '\n' (including '\r' and NUL). The tag
// records whether the original output had a newline right after the text:
// F means it did; P (partial) means it did not, because the text was cut at
// the 16 KiB limit per entry or because the bytes ended at a read boundary
// or at the end of the output without a newline. Decoding therefore
// concatenates the texts of a stream's entries and adds '\n' after each F
// entry, which reproduces that stream's original bytes exactly. A "line" of
// output, as counted by [ReadOptions.Tail], is a run of one stream's entries
// that ends with an F entry (or the unterminated run at the end of the log).
//
// The log lives at a path; rotation renames it to path.1, shifting older
// files to path.2 ... path.N and dropping the oldest (see [Options]).
// [Writer] produces such logs, [ParseLine] and [Decoder] read entries, and
// [Dump] and [Follow] turn a rotated set of files back into output streams
// for `tether logs`.
//
// The package deals only in files and bytes: it knows nothing of
// containers, processes, pipes or sockets. Callers decide where output comes
// from (see [Writer.Copy]) and when a container is finished (the done
// function of [Follow]).
package crilog
