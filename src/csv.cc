#include "csv.h"

namespace streamrec {

Status SplitCsvLine(std::string_view line, char delimiter, std::vector<std::string>* fields) {
  fields->clear();
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string current;
  bool in_quotes = false;
  bool was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          current.push_back('"');
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        current.push_back(c);
      }
    } else if (c == '"' && current.empty() && !was_quoted) {
      in_quotes = true;
      was_quoted = true;
    } else if (c == delimiter) {
      fields->push_back(std::move(current));
      current.clear();
      was_quoted = false;
    } else {
      current.push_back(c);
    }
  }
  if (in_quotes) {
    std::string shown(line.substr(0, 80));
    return Status::InvalidArgument("unterminated quote in CSV line '" + shown + "'");
  }
  fields->push_back(std::move(current));
  return Status::OK();
}

std::string CsvEscape(std::string_view field, char delimiter) {
  if (field.find_first_of(std::string{delimiter, '"', '\n', '\r'}) == std::string_view::npos) {
    return std::string(field);
  }
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace streamrec
