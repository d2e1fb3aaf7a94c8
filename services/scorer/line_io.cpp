#include "line_io.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "pqa/rollup/event.h"

namespace pqa::scorer {

void FileCloser::operator()(std::FILE* f) const {
  if (f != nullptr && f != stdin && f != stdout) std::fclose(f);
}

namespace {
FilePtr open_file(const std::string& path, const char* mode, std::FILE* dash) {
  if (path == "-") return FilePtr(dash);
  std::FILE* f = std::fopen(path.c_str(), mode);
  if (f == nullptr) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  return FilePtr(f);
}
}  // namespace

LineReader::LineReader(const std::string& path, std::size_t max_line_bytes)
    : file_(open_file(path, "rb", stdin)),
      capacity_(std::max<std::size_t>(max_line_bytes + 2, 1 << 20)) {
  buffer_.resize(capacity_ + rollup::kInputPadding);
}

bool LineReader::refill() {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  const std::size_t n = std::fread(buffer_.data() + end_, 1, capacity_ - end_, file_.get());
  if (n == 0) {
    if (std::ferror(file_.get())) throw std::runtime_error("read error on input");
    eof_ = true;
    return false;
  }
  end_ += n;
  return true;
}

bool LineReader::next(std::string_view& line, bool& overlong) {
  overlong = false;
  for (;;) {
    const char* start = buffer_.data() + begin_;
    const void* nl = std::memchr(start, '\n', end_ - begin_);
    if (nl != nullptr) {
      const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - start);
      begin_ += len + 1;
      if (skipping_) {  // the end of an overlong line already reported
        skipping_ = false;
        continue;
      }
      line = std::string_view(start, len);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      ++line_number_;
      return true;
    }
    if (end_ - begin_ == capacity_) {  // a line fills the whole buffer: report, skip rest
      line = std::string_view(start, end_ - begin_);
      begin_ = end_;
      overlong = !skipping_;
      if (!skipping_) {
        skipping_ = true;
        ++line_number_;
        return true;
      }
      continue;
    }
    if (!refill()) {
      if (begin_ == end_ || skipping_) return false;
      line = std::string_view(buffer_.data() + begin_, end_ - begin_);  // last line, no '\n'
      begin_ = end_;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      ++line_number_;
      return true;
    }
  }
}

bool prepare_input_line(std::string_view& line, std::uint64_t line_number, bool overlong) {
  if (overlong) return true;
  if (line_number == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
  return line.find_first_not_of(" \t") != std::string_view::npos;
}

LineWriter::LineWriter(const std::string& path)
    : file_(open_file(path, "wb", stdout)), path_(path) {
  buffer_.reserve(1 << 20);
}

void LineWriter::write_line(std::string_view line) {
  buffer_.append(line);
  buffer_.push_back('\n');
  if (buffer_.size() >= (1 << 20)) flush();
}

void LineWriter::flush() {
  if (!buffer_.empty() &&
      std::fwrite(buffer_.data(), 1, buffer_.size(), file_.get()) != buffer_.size())
    throw std::runtime_error("write error on " + path_);
  buffer_.clear();
  if (std::fflush(file_.get()) != 0) throw std::runtime_error("write error on " + path_);
}

}  // namespace pqa::scorer
