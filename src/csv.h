// Minimal RFC 4180 field splitting, shared by the CSV decoder, the catalogue loader and tests.
#ifndef STREAMREC_SRC_CSV_H_
#define STREAMREC_SRC_CSV_H_

#include <string>
#include <string_view>
#include <vector>

#include "streamrec/status.h"

namespace streamrec {

// Splits one CSV line into fields, honouring double quotes ("a,b" and "" escapes). A trailing
// '\r' is ignored. `fields` is cleared first; its capacity is reused across calls.
// Error (naming the line) on an unterminated quote.
Status SplitCsvLine(std::string_view line, char delimiter, std::vector<std::string>* fields);

// Quotes `field` for CSV output when it holds the delimiter, a quote or a newline.
std::string CsvEscape(std::string_view field, char delimiter = ',');

}  // namespace streamrec

#endif  // STREAMREC_SRC_CSV_H_
