// FileSource: a purchases file read as one source partition. Offsets are data-line indexes
// (0 = the first line after a CSV header), so a stored position says exactly where to resume.
#ifndef STREAMREC_SRC_FILE_SOURCE_H_
#define STREAMREC_SRC_FILE_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "file_io.h"
#include "streamrec/pipeline.h"
#include "streamrec/status.h"

namespace streamrec {

class FileSource {
 public:
  // Opens `path`; when `has_header`, the first line is read as the header.
  static StatusOr<std::unique_ptr<FileSource>> Open(const std::string& path, bool has_header);

  // The header line (empty without one).
  const std::string& header() const { return header_; }

  // Skips data lines until the next offset is `offset` (resume). Error if the file is shorter.
  Status SeekTo(uint64_t offset);

  // Reads up to `max_records` records into *batch (cleared first); blank lines are skipped but
  // keep their offsets. Returns false at end of input (batch may still hold the last records).
  bool NextBatch(size_t max_records, std::vector<SourceRecord>* batch);
  const Status& status() const { return reader_->status(); }

  uint64_t next_offset() const { return next_offset_; }
  double fraction_read() const;

 private:
  std::unique_ptr<LineReader> reader_;
  std::string header_;
  uint64_t next_offset_ = 0;
  std::vector<std::string> lines_;  // storage the SourceRecord views point into
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_FILE_SOURCE_H_
