// lookalike-load: loads a product catalogue folder into PostgreSQL.
//
//   lookalike-load [--dsn CONNINFO] [--schema NAME] [--quiet] FOLDER
//
// FOLDER is shaped like the fashion set: styles.csv (id, gender, masterCategory, subCategory,
// articleType, baseColour, season, year, usage, productDisplayName) and images/<id>.jpg (or
// .jpeg/.png/.webp). Every metadata row goes into <schema>.products (default schema `fashion`),
// with its image as bytea where the file exists. One transaction: rows are sent with binary COPY
// into a temporary staging table, then upserted by id, so re-running never duplicates a row and
// only rows whose content changed are rewritten. Lines that cannot be read are reported (line
// number and reason) and skipped; the summary on stderr counts them. Exit status: 0 on success
// (even with unreadable lines), 1 on a database or file error, 2 on bad usage.
// CONNINFO is a libpq connection string; without --dsn the PG* environment variables apply.
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/errors.hpp"
#include "loader/csv.hpp"

namespace {

using lookalike::loader::CsvTable;

// styles.csv header name -> products column, in table order (after id).
struct Column {
  const char *csv;
  const char *sql;
};
constexpr Column kColumns[] = {
    {"gender", "gender"},
    {"masterCategory", "master_category"},
    {"subCategory", "sub_category"},
    {"articleType", "article_type"},
    {"baseColour", "base_colour"},
    {"season", "season"},
    {"year", "year"},
    {"usage", "usage"},
    {"productDisplayName", "product_display_name"},
};
constexpr int kNumColumns = sizeof(kColumns) / sizeof(kColumns[0]);

struct Failure {
  std::string message;
};

// Binary COPY row encoder (PostgreSQL's COPY BINARY format).
class CopyBuffer {
 public:
  CopyBuffer() {
    static const char sig[] = "PGCOPY\n\377\r\n";
    buf_.append(sig, 11);
    put32(0);  // flags
    put32(0);  // header extension length
  }
  void begin_row(int16_t fields) { put16(fields); }
  void null_field() { put32(-1); }
  void int_field(int32_t v) {
    put32(4);
    put32(v);
  }
  void bytes_field(const char *p, size_t n) {
    put32(static_cast<int32_t>(n));
    buf_.append(p, n);
  }
  void text_field(const std::string &s) { bytes_field(s.data(), s.size()); }
  void finish() { put16(-1); }
  std::string &data() { return buf_; }

 private:
  void put16(int16_t v) {
    uint16_t n = htons(static_cast<uint16_t>(v));
    buf_.append(reinterpret_cast<const char *>(&n), 2);
  }
  void put32(int32_t v) {
    uint32_t n = htonl(static_cast<uint32_t>(v));
    buf_.append(reinterpret_cast<const char *>(&n), 4);
  }
  std::string buf_;
};

bool read_file(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) return false;
  out = ss.str();
  return true;
}

bool file_exists(const std::string &path) { return std::ifstream(path).good(); }

std::string quote_ident(PGconn *conn, const std::string &s) {
  char *q = PQescapeIdentifier(conn, s.data(), s.size());
  if (!q) throw Failure{PQerrorMessage(conn)};
  std::string r(q);
  PQfreemem(q);
  return r;
}

// r if its status is `want`, else throws its error message (r cleared).
PGresult *expect(PGresult *r, ExecStatusType want) {
  if (PQresultStatus(r) != want) {
    std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    throw Failure{msg};
  }
  return r;
}

void exec(PGconn *conn, const std::string &sql) {
  PGresult *r = PQexec(conn, sql.c_str());
  const auto st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    throw Failure{msg};
  }
  PQclear(r);
}

void usage() {
  std::fprintf(stderr,
               "usage: lookalike-load [--dsn CONNINFO] [--schema NAME] [--quiet] FOLDER\n"
               "  FOLDER holds styles.csv and images/<id>.jpg; rows go to <schema>.products\n"
               "  (default schema: fashion). Without --dsn the PG* environment variables apply.\n");
}

struct Options {
  std::string dsn, schema = "fashion", folder;
  bool quiet = false;
  bool tty = false;  // stderr is a terminal: progress on one line
};

// Reads the command line into o. Returns -1 to go on, else the exit status (0 for --help).
int parse_args(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dsn" && i + 1 < argc) {
      o.dsn = argv[++i];
    } else if (a == "--schema" && i + 1 < argc) {
      o.schema = argv[++i];
    } else if (a == "--quiet") {
      o.quiet = true;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (!a.empty() && a[0] != '-' && o.folder.empty()) {
      o.folder = a;
    } else {
      usage();
      return 2;
    }
  }
  if (o.folder.empty()) {
    usage();
    return 2;
  }
  o.tty = isatty(2);
  return -1;
}

// styles.csv, read and checked.
struct Metadata {
  CsvTable table;
  int id_col = -1;
  int cols[kNumColumns];                        // CSV column of each of kColumns
  std::vector<lookalike::loader::BadLine> bad;  // lines skipped (and images unreadable)
};

// Reads FOLDER/styles.csv into m. Returns false, after a message, when it cannot be read or
// lacks a column.
bool read_metadata(const std::string &folder, Metadata &m) {
  std::string text;
  const std::string csv_path = folder + "/styles.csv";
  if (!read_file(csv_path, text)) {
    std::fprintf(stderr, "lookalike-load: cannot read %s: %s\n", csv_path.c_str(),
                 std::strerror(errno));
    return false;
  }
  try {
    m.table = CsvTable::parse(text);
  } catch (const lookalike::Error &e) {
    std::fprintf(stderr, "lookalike-load: %s: %s\n", csv_path.c_str(), e.what());
    return false;
  }
  m.id_col = m.table.column("id");
  std::string missing_cols;
  if (m.id_col < 0) missing_cols += " id";
  for (int c = 0; c < kNumColumns; ++c) {
    m.cols[c] = m.table.column(kColumns[c].csv);
    if (m.cols[c] < 0) missing_cols += std::string(" ") + kColumns[c].csv;
  }
  if (!missing_cols.empty()) {
    std::fprintf(stderr, "lookalike-load: %s lacks the column(s):%s\n", csv_path.c_str(),
                 missing_cols.c_str());
    return false;
  }
  m.bad = m.table.bad_lines();
  return true;
}

struct Counts {
  size_t images = 0, images_missing = 0, images_unreadable = 0, rows_sent = 0, rejoined = 0;
  long inserted = 0, updated = 0;
};

// Creates <schema>.products if needed and the staging table, and starts the COPY into it.
void begin_staging(PGconn *conn, const std::string &s) {
  exec(conn, "CREATE SCHEMA IF NOT EXISTS " + s);
  exec(conn, "CREATE TABLE IF NOT EXISTS " + s +
                 ".products (id integer PRIMARY KEY, gender text, master_category text, "
                 "sub_category text, article_type text, base_colour text, season text, "
                 "year integer, usage text, product_display_name text, image bytea)");
  exec(conn, "ALTER TABLE " + s + ".products ALTER COLUMN image SET STORAGE EXTERNAL");
  exec(conn, "COMMENT ON TABLE " + s +
                 ".products IS 'product catalogue loaded by lookalike-load: one row per "
                 "styles.csv line, image bytes where images/<id>.* exists'");
  exec(conn, "CREATE TEMP TABLE staging (LIKE " + s + ".products) ON COMMIT DROP");
  PQclear(expect(PQexec(conn, "COPY staging FROM STDIN (FORMAT binary)"), PGRES_COPY_IN));
}

// The image field of product id: the bytes of FOLDER/images/<id>.<ext> (the first extension
// that exists), else NULL; an image that exists but cannot be read is reported as a bad line.
void put_image(CopyBuffer &buf, const std::string &folder, int id, size_t line_number,
               std::string &image, Metadata &m, Counts &n) {
  static const char *const exts[] = {".jpg", ".jpeg", ".png", ".webp"};
  for (const char *ext : exts) {
    const std::string path = folder + "/images/" + std::to_string(id) + ext;
    if (!file_exists(path)) continue;
    if (read_file(path, image) && !image.empty()) {
      buf.bytes_field(image.data(), image.size());
      ++n.images;
    } else {
      buf.null_field();
      ++n.images_unreadable;
      m.bad.push_back(
          {line_number, "image " + path + " could not be read (row loaded without it)"});
    }
    return;
  }
  buf.null_field();
  ++n.images_missing;
}

// One record as a COPY row; false (the reason added to m.bad) when it is skipped.
bool put_row(CopyBuffer &buf, const lookalike::loader::Record &rec, const std::string &folder,
             std::unordered_set<int> &seen_ids, std::string &image, Metadata &m, Counts &n) {
  int id = 0;
  if (!lookalike::loader::parse_int32(rec.fields[m.id_col], &id)) {
    m.bad.push_back({rec.line_number, "id '" + rec.fields[m.id_col] + "' is not an integer"});
    return false;
  }
  int year = 0;
  const std::string &year_text = rec.fields[m.cols[6]];
  const bool has_year = lookalike::loader::parse_int32(year_text, &year);
  if (!has_year && !year_text.empty() && year_text != "NA") {
    m.bad.push_back({rec.line_number, "year '" + year_text + "' is not an integer"});
    return false;
  }
  if (!seen_ids.insert(id).second) {
    m.bad.push_back({rec.line_number, "duplicate id " + std::to_string(id)});
    return false;
  }
  if (rec.rejoined) ++n.rejoined;
  buf.begin_row(1 + kNumColumns + 1);
  buf.int_field(id);
  for (int c = 0; c < kNumColumns; ++c) {
    if (c == 6) {
      if (has_year)
        buf.int_field(year);
      else
        buf.null_field();
    } else {
      buf.text_field(rec.fields[m.cols[c]]);
    }
  }
  put_image(buf, folder, id, rec.line_number, image, m, n);
  ++n.rows_sent;
  return true;
}

// Sends every record to the staging table (in 8 MB pieces) and ends the COPY.
void send_rows(PGconn *conn, const Options &o, Metadata &m, Counts &n) {
  const size_t total = m.table.records().size();
  std::unordered_set<int> seen_ids;
  CopyBuffer buf;
  std::string image;
  for (size_t i = 0; i < total; ++i) {
    put_row(buf, m.table.records()[i], o.folder, seen_ids, image, m, n);
    if (buf.data().size() > (8u << 20)) {
      if (PQputCopyData(conn, buf.data().data(), static_cast<int>(buf.data().size())) != 1)
        throw Failure{PQerrorMessage(conn)};
      buf.data().clear();
    }
    if (!o.quiet && ((i + 1) % (o.tty ? 2000 : 10000) == 0 || i + 1 == total))
      std::fprintf(stderr, "%slookalike-load: %zu/%zu rows read, %zu images%s", o.tty ? "\r" : "",
                   i + 1, total, n.images, o.tty ? "" : "\n");
  }
  buf.finish();
  if (PQputCopyData(conn, buf.data().data(), static_cast<int>(buf.data().size())) != 1)
    throw Failure{PQerrorMessage(conn)};
  if (!o.quiet && o.tty && total > 0) std::fputc('\n', stderr);
  if (PQputCopyEnd(conn, nullptr) != 1) throw Failure{PQerrorMessage(conn)};
  PQclear(expect(PQgetResult(conn), PGRES_COMMAND_OK));
  while (PGresult *r = PQgetResult(conn)) PQclear(r);
}

// Upserts the staging table into <schema>.products; a row is rewritten only if its content
// changed. xmax = 0 marks a fresh insert.
void upsert(PGconn *conn, const std::string &s, Counts &n) {
  std::string set_list, distinct_a = "(", distinct_b = "(";
  for (int c = 0; c < kNumColumns; ++c) {
    set_list += std::string(c ? ", " : "") + kColumns[c].sql + " = excluded." + kColumns[c].sql;
    distinct_a += std::string("p.") + kColumns[c].sql + ", ";
    distinct_b += std::string("excluded.") + kColumns[c].sql + ", ";
  }
  set_list += ", image = excluded.image";
  distinct_a += "p.image)";
  distinct_b += "excluded.image)";
  PGresult *r = expect(
      PQexec(conn,
             ("WITH up AS (INSERT INTO " + s + ".products AS p SELECT * FROM staging " +
              "ON CONFLICT (id) DO UPDATE SET " + set_list + " WHERE " + distinct_a +
              " IS DISTINCT FROM " + distinct_b + " RETURNING (xmax = 0) AS fresh) " +
              "SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) FROM up")
                 .c_str()),
      PGRES_TUPLES_OK);
  n.inserted = std::atol(PQgetvalue(r, 0, 0));
  n.updated = std::atol(PQgetvalue(r, 0, 1));
  PQclear(r);
}

// The summary on stderr: up to 20 bad lines, then the counts.
void report(const Options &o, const Metadata &m, const Counts &n, double secs) {
  const auto &bad = m.bad;
  for (size_t i = 0; i < bad.size() && i < 20; ++i)
    std::fprintf(stderr, "lookalike-load: line %zu: %s\n", bad[i].line_number,
                 bad[i].reason.c_str());
  if (bad.size() > 20) std::fprintf(stderr, "lookalike-load: ... and %zu more\n", bad.size() - 20);
  std::fprintf(stderr,
               "lookalike-load: %s.products: %zu rows read (%zu with commas rejoined into "
               "productDisplayName), %ld inserted, %ld updated, %zu unchanged; %zu images, %zu "
               "missing, %zu unreadable; %zu unreadable lines skipped; %.1f s\n",
               o.schema.c_str(), n.rows_sent, n.rejoined, n.inserted, n.updated,
               n.rows_sent - static_cast<size_t>(n.inserted + n.updated), n.images,
               n.images_missing, n.images_unreadable, bad.size() - n.images_unreadable, secs);
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  if (int status = parse_args(argc, argv, o); status >= 0) return status;
  const auto t0 = std::chrono::steady_clock::now();
  Metadata m;
  if (!read_metadata(o.folder, m)) return 1;

  // Connect, stage with binary COPY, upsert: all in one transaction.
  PGconn *conn = PQconnectdb(o.dsn.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::fprintf(stderr, "lookalike-load: connection failed: %s", PQerrorMessage(conn));
    PQfinish(conn);
    return 1;
  }
  Counts n;
  try {
    exec(conn, "SET client_min_messages = warning");
    exec(conn, "BEGIN");
    const std::string s = quote_ident(conn, o.schema);
    begin_staging(conn, s);
    send_rows(conn, o, m, n);
    upsert(conn, s, n);
    exec(conn, "COMMIT");
    exec(conn, "ANALYZE " + s + ".products");
  } catch (const Failure &f) {
    if (!o.quiet && o.tty) std::fputc('\n', stderr);
    std::fprintf(stderr, "lookalike-load: %s", f.message.c_str());
    if (f.message.empty() || f.message.back() != '\n') std::fputc('\n', stderr);
    std::fprintf(stderr, "lookalike-load: nothing was changed (the transaction was rolled back)\n");
    PQfinish(conn);
    return 1;
  }
  PQfinish(conn);
  report(o, m, n, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}
