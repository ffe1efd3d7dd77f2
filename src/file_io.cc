#include "file_io.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

namespace streamrec {

namespace {
constexpr size_t kReadChunk = 1 << 16;
std::string ErrnoText() { return std::strerror(errno); }
}  // namespace

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

StatusOr<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return Status::IOError("cannot open '" + path + "': " + ErrnoText());
  }
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) return Status::IOError("cannot open '" + path + "': " + ErrnoText());
  gzbuffer(gz, 1 << 17);
  std::unique_ptr<LineReader> reader(new LineReader());
  reader->gz_ = gz;
  reader->path_ = path;
  reader->file_size_ = static_cast<uint64_t>(st.st_size);
  return reader;
}

LineReader::~LineReader() {
  if (gz_ != nullptr) gzclose(static_cast<gzFile>(gz_));
}

uint64_t LineReader::file_position() const {
  if (gz_ == nullptr) return file_size_;
  z_off_t off = gzoffset(static_cast<gzFile>(gz_));
  return off < 0 ? 0 : static_cast<uint64_t>(off);
}

bool LineReader::Fill() {
  if (eof_) return false;
  if (pos_ > 0) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  size_t old = buffer_.size();
  buffer_.resize(old + kReadChunk);
  int n = gzread(static_cast<gzFile>(gz_), buffer_.data() + old, kReadChunk);
  if (n < 0) {
    int errnum = 0;
    const char* msg = gzerror(static_cast<gzFile>(gz_), &errnum);
    status_ = Status::IOError("read error in '" + path_ + "': " + (msg ? msg : "unknown"));
    buffer_.resize(old);
    eof_ = true;
    return false;
  }
  buffer_.resize(old + static_cast<size_t>(n));
  if (n == 0) eof_ = true;
  return n > 0;
}

bool LineReader::Next(std::string* line) {
  while (true) {
    size_t nl = buffer_.find('\n', pos_);
    if (nl != std::string::npos) {
      size_t end = nl;
      if (end > pos_ && buffer_[end - 1] == '\r') --end;
      line->assign(buffer_, pos_, end - pos_);
      pos_ = nl + 1;
      return true;
    }
    if (!Fill()) {
      if (!status_.ok()) return false;
      if (pos_ < buffer_.size()) {  // last line without '\n'
        size_t end = buffer_.size();
        if (buffer_[end - 1] == '\r') --end;
        line->assign(buffer_, pos_, end - pos_);
        pos_ = buffer_.size();
        return true;
      }
      return false;
    }
  }
}

StatusOr<std::unique_ptr<LineWriter>> LineWriter::Open(const std::string& path, bool append) {
  std::unique_ptr<LineWriter> writer(new LineWriter());
  writer->path_ = path;
  if (EndsWith(path, ".gz")) {
    gzFile gz = gzopen(path.c_str(), append ? "ab6" : "wb6");
    if (gz == nullptr) return Status::IOError("cannot create '" + path + "': " + ErrnoText());
    gzbuffer(gz, 1 << 17);
    writer->gz_ = gz;
  } else {
    std::FILE* f = std::fopen(path.c_str(), append ? "ab" : "wb");
    if (f == nullptr) return Status::IOError("cannot create '" + path + "': " + ErrnoText());
    writer->file_ = f;
  }
  return writer;
}

LineWriter::~LineWriter() { Close().IgnoreError(); }

Status LineWriter::Write(std::string_view line) {
  if (gz_ != nullptr) {
    if (!line.empty() &&
        gzwrite(static_cast<gzFile>(gz_), line.data(), static_cast<unsigned>(line.size())) == 0) {
      return Status::IOError("write error in '" + path_ + "'");
    }
    if (gzputc(static_cast<gzFile>(gz_), '\n') < 0) {
      return Status::IOError("write error in '" + path_ + "'");
    }
    return Status::OK();
  }
  if (file_ == nullptr) return Status::IOError("'" + path_ + "' is closed");
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() ||
      std::fputc('\n', file_) == EOF) {
    return Status::IOError("write error in '" + path_ + "': " + ErrnoText());
  }
  return Status::OK();
}

Status LineWriter::Flush() {
  if (gz_ != nullptr) {
    if (gzflush(static_cast<gzFile>(gz_), Z_SYNC_FLUSH) != Z_OK) {
      return Status::IOError("flush error in '" + path_ + "'");
    }
  } else if (file_ != nullptr && std::fflush(file_) != 0) {
    return Status::IOError("flush error in '" + path_ + "': " + ErrnoText());
  }
  return Status::OK();
}

Status LineWriter::Close() {
  Status s;
  if (gz_ != nullptr) {
    if (gzclose(static_cast<gzFile>(gz_)) != Z_OK) s = Status::IOError("close error in '" + path_ + "'");
    gz_ = nullptr;
  }
  if (file_ != nullptr) {
    if (std::fclose(file_) != 0) s = Status::IOError("close error in '" + path_ + "': " + ErrnoText());
    file_ = nullptr;
  }
  return s;
}

}  // namespace streamrec
