// Buffered line input and output for the offline mode (files or stdin/stdout).
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pqa::scorer {

struct FileCloser {
  void operator()(std::FILE* f) const;
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

/// Reads lines (without '\n', a trailing '\r' removed) from a file or "-" (stdin), in large
/// blocks. A line longer than the buffer is returned truncated with `overlong` set, so a giant
/// line can never exhaust memory. Every line returned is followed in memory by at least
/// rollup::kInputPadding readable bytes, so the decoder can parse it in place.
class LineReader {
 public:
  LineReader(const std::string& path, std::size_t max_line_bytes);
  /// False at the end of input.
  bool next(std::string_view& line, bool& overlong);
  std::uint64_t line_number() const { return line_number_; }

 private:
  bool refill();
  FilePtr file_;
  std::vector<char> buffer_;  ///< capacity_ bytes of lines, then the readable padding
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  bool skipping_ = false;  // inside the tail of an overlong line
  std::uint64_t line_number_ = 0;
};

/// What becomes of an input line before it is an event, in replay and in pqa-load alike (the
/// two must send the service and the oracle the same bytes): a UTF-8 byte order mark before
/// the first line is dropped (RFC 8259 lets a parser ignore one; editors on Windows write it),
/// and a blank line is skipped (false). LineReader has already dropped a trailing '\r'. An
/// overlong line is known only by its first bytes: it is never blank.
bool prepare_input_line(std::string_view& line, std::uint64_t line_number, bool overlong);

/// Writes lines to a file or "-" (stdout) through a large buffer. Throws on write errors.
class LineWriter {
 public:
  explicit LineWriter(const std::string& path);
  void write_line(std::string_view line);
  void flush();

 private:
  FilePtr file_;
  std::string path_;
  std::string buffer_;
};

}  // namespace pqa::scorer
