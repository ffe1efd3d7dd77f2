#include "file_source.h"

namespace streamrec {

StatusOr<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path, bool has_header) {
  auto reader = LineReader::Open(path);
  if (!reader.ok()) return reader.status();
  auto source = std::make_unique<FileSource>();
  source->reader_ = std::move(reader).value();
  if (has_header) {
    if (!source->reader_->Next(&source->header_)) {
      if (!source->reader_->status().ok()) return source->reader_->status();
      return Status::InvalidArgument("input '" + path + "' is empty: expected a CSV header line");
    }
  }
  return source;
}

Status FileSource::SeekTo(uint64_t offset) {
  std::string line;
  while (next_offset_ < offset) {
    if (!reader_->Next(&line)) {
      STREAMREC_RETURN_IF_ERROR(reader_->status());
      return Status::InvalidArgument("input '" + reader_->path() + "' has " +
                                     std::to_string(next_offset_) +
                                     " records but the stored position is " +
                                     std::to_string(offset) +
                                     ": this state was built from another input");
    }
    ++next_offset_;
  }
  return Status::OK();
}

bool FileSource::NextBatch(size_t max_records, std::vector<SourceRecord>* batch) {
  batch->clear();
  if (lines_.size() < max_records) lines_.resize(max_records);
  size_t used = 0;
  while (used < max_records) {
    std::string& line = lines_[used];
    if (!reader_->Next(&line)) return false;
    uint64_t offset = next_offset_++;
    if (line.empty()) continue;
    batch->push_back(SourceRecord{offset, std::string_view(), line});
    ++used;
  }
  return true;
}

double FileSource::fraction_read() const {
  if (reader_->file_size() == 0) return 1.0;
  return static_cast<double>(reader_->file_position()) / static_cast<double>(reader_->file_size());
}

}  // namespace streamrec
