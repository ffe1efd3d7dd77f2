// Line-oriented file reading and writing, plain or gzip (decided by content when reading, by the
// ".gz" suffix when writing). Used by the file source, the generator and the catalogue.
#ifndef STREAMREC_SRC_FILE_IO_H_
#define STREAMREC_SRC_FILE_IO_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "streamrec/status.h"

namespace streamrec {

class LineReader {
 public:
  // Opens `path`; gzip is detected from the content, so a plain file works too.
  static StatusOr<std::unique_ptr<LineReader>> Open(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Reads the next line into *line without its '\n' (or "\r\n"). Returns false at end of file.
  // A read error is reported by status() after false.
  bool Next(std::string* line);
  const Status& status() const { return status_; }
  // Bytes of the file (compressed, for gzip) consumed so far, and the file's size: progress.
  uint64_t file_position() const;
  uint64_t file_size() const { return file_size_; }
  const std::string& path() const { return path_; }

 private:
  LineReader() = default;
  bool Fill();
  void* gz_ = nullptr;  // gzFile
  std::string path_;
  std::string buffer_;
  size_t pos_ = 0;
  bool eof_ = false;
  uint64_t file_size_ = 0;
  Status status_;
};

class LineWriter {
 public:
  // Creates (truncates) `path`, or appends when `append`; gzip when the path ends in ".gz".
  static StatusOr<std::unique_ptr<LineWriter>> Open(const std::string& path, bool append = false);
  ~LineWriter();
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;

  // Appends `line` and a '\n'.
  Status Write(std::string_view line);
  // Pushes buffered bytes to the operating system (not fsync).
  Status Flush();
  // Flushes and closes; further writes fail. Called by the destructor if needed.
  Status Close();

 private:
  LineWriter() = default;
  void* gz_ = nullptr;    // gzFile when compressing
  std::FILE* file_ = nullptr;
  std::string path_;
};

bool EndsWith(std::string_view text, std::string_view suffix);

}  // namespace streamrec

#endif  // STREAMREC_SRC_FILE_IO_H_
