// The plain CSV the report files use (docs/report-format.md): a header, then rows of as many
// comma-separated fields; no quoting. Errors name file:line:column.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/report.h"

namespace normnet {

namespace {

// Splits one line into fields and their 1-based start columns.
void split_line(const std::string& line, std::vector<std::string>* fields, std::vector<int64_t>* starts) {
  size_t begin = 0;
  while (true) {
    const size_t comma = line.find(',', begin);
    fields->push_back(line.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin));
    starts->push_back(static_cast<int64_t>(begin) + 1);
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
}

}  // namespace

CsvTable parse_csv(const std::string& text, const std::string& what,
                   const std::vector<std::string>& required_columns) {
  CsvTable t;
  t.what = what;
  check(!text.empty(), what, ": the file is empty (expected a header line)");
  size_t pos = 0;
  int64_t line_no = 0;
  bool header = true;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t quote = line.find('"');
    check(quote == std::string::npos, what, ":", line_no, ":", quote + 1,
          ": quoted fields are not supported (fields hold no commas or quotes)");
    check(!line.empty(), what, ":", line_no, ":1: blank line", header ? " (expected the header)" : "");
    std::vector<std::string> fields;
    std::vector<int64_t> starts;
    split_line(line, &fields, &starts);
    if (header) {
      std::set<std::string> names;
      for (size_t i = 0; i < fields.size(); ++i) {
        check(!fields[i].empty(), what, ":", line_no, ":", starts[i], ": empty column name in the header");
        check(names.insert(fields[i]).second, what, ":", line_no, ":", starts[i], ": column '", fields[i],
              "' appears twice in the header");
      }
      t.header = fields;
      header = false;
      continue;
    }
    check(fields.size() == t.header.size(), what, ":", line_no, ":", line.size() + 1, ": ", fields.size(),
          " fields, expected ", t.header.size(), " (as the header)");
    t.rows.push_back(std::move(fields));
    t.starts.push_back(std::move(starts));
    t.lines.push_back(line_no);
  }
  for (const std::string& c : required_columns) t.column(c);
  return t;
}

CsvTable read_csv(const std::string& path, const std::vector<std::string>& required_columns) {
  const auto bytes = read_file(path);
  return parse_csv(std::string(bytes.begin(), bytes.end()), path, required_columns);
}

bool CsvTable::has(const std::string& name) const {
  for (const std::string& h : header)
    if (h == name) return true;
  return false;
}

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  std::string have;
  for (const std::string& h : header) have += (have.empty() ? "" : ",") + h;
  fail(what, ":1:1: no column '", name, "' in the header (", have, ")");
}

const std::string& CsvTable::text(size_t row, int col) const { return rows.at(row).at(static_cast<size_t>(col)); }

double CsvTable::number_or_nan(size_t row, int col) const {
  const std::string& s = text(row, col);
  if (s.empty()) return std::nan("");
  return number(row, col);
}

double CsvTable::number(size_t row, int col) const {
  const std::string& s = text(row, col);
  const char* begin = s.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = s.empty() ? 0.0 : std::strtod(begin, &end);
  check(!s.empty() && end == begin + s.size() && std::isfinite(v) && errno != ERANGE, what, ":", lines[row], ":",
        starts[row][static_cast<size_t>(col)], ": ", header[static_cast<size_t>(col)], " '", s,
        "' is not a finite number");
  return v;
}

int64_t CsvTable::integer(size_t row, int col) const {
  const std::string& s = text(row, col);
  const char* begin = s.c_str();
  char* end = nullptr;
  errno = 0;
  const long long v = s.empty() ? 0 : std::strtoll(begin, &end, 10);
  check(!s.empty() && end == begin + s.size() && errno != ERANGE, what, ":", lines[row], ":",
        starts[row][static_cast<size_t>(col)], ": ", header[static_cast<size_t>(col)], " '", s,
        "' is not an integer");
  return v;
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    check(fields[i].find_first_of(",\"\r\n") == std::string::npos, "CSV field '", fields[i],
          "' holds a comma, quote or line break (names in report files must not)");
    if (i) out += ',';
    out += fields[i];
  }
  return out + "\n";
}

std::string csv_number(double v) {
  if (std::isnan(v)) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace normnet
