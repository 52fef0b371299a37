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

}  // namespace

int main(int argc, char **argv) {
  std::string dsn, schema = "fashion", folder;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dsn" && i + 1 < argc) {
      dsn = argv[++i];
    } else if (a == "--schema" && i + 1 < argc) {
      schema = argv[++i];
    } else if (a == "--quiet") {
      quiet = true;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (!a.empty() && a[0] != '-' && folder.empty()) {
      folder = a;
    } else {
      usage();
      return 2;
    }
  }
  if (folder.empty()) {
    usage();
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const bool tty = isatty(2);

  // 1. Metadata.
  std::string text;
  const std::string csv_path = folder + "/styles.csv";
  if (!read_file(csv_path, text)) {
    std::fprintf(stderr, "lookalike-load: cannot read %s: %s\n", csv_path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  CsvTable table;
  try {
    table = CsvTable::parse(text);
  } catch (const lookalike::Error &e) {
    std::fprintf(stderr, "lookalike-load: %s: %s\n", csv_path.c_str(), e.what());
    return 1;
  }
  text.clear();
  text.shrink_to_fit();
  const int id_col = table.column("id");
  int cols[kNumColumns];
  std::string missing_cols;
  if (id_col < 0) missing_cols += " id";
  for (int c = 0; c < kNumColumns; ++c) {
    cols[c] = table.column(kColumns[c].csv);
    if (cols[c] < 0) missing_cols += std::string(" ") + kColumns[c].csv;
  }
  if (!missing_cols.empty()) {
    std::fprintf(stderr, "lookalike-load: %s lacks the column(s):%s\n", csv_path.c_str(),
                 missing_cols.c_str());
    return 1;
  }
  std::vector<lookalike::loader::BadLine> bad = table.bad_lines();

  // 2. Connect, stage with binary COPY, upsert: all in one transaction.
  PGconn *conn = PQconnectdb(dsn.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::fprintf(stderr, "lookalike-load: connection failed: %s", PQerrorMessage(conn));
    PQfinish(conn);
    return 1;
  }
  size_t images = 0, images_missing = 0, images_unreadable = 0, rows_sent = 0, rejoined = 0;
  long inserted = 0, updated = 0;
  try {
    exec(conn, "SET client_min_messages = warning");
    exec(conn, "BEGIN");
    const std::string s = quote_ident(conn, schema);
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
    PGresult *r = PQexec(conn, "COPY staging FROM STDIN (FORMAT binary)");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
      std::string msg = PQresultErrorMessage(r);
      PQclear(r);
      throw Failure{msg};
    }
    PQclear(r);

    const size_t total = table.records().size();
    std::unordered_set<int> seen_ids;
    CopyBuffer buf;
    std::string image;
    const char *exts[] = {".jpg", ".jpeg", ".png", ".webp"};
    for (size_t i = 0; i < total; ++i) {
      const auto &rec = table.records()[i];
      int id = 0;
      if (!lookalike::loader::parse_int32(rec.fields[id_col], &id)) {
        bad.push_back({rec.line_number, "id '" + rec.fields[id_col] + "' is not an integer"});
        continue;
      }
      int year = 0;
      const std::string &year_text = rec.fields[cols[6]];
      const bool has_year = lookalike::loader::parse_int32(year_text, &year);
      if (!has_year && !year_text.empty() && year_text != "NA") {
        bad.push_back({rec.line_number, "year '" + year_text + "' is not an integer"});
        continue;
      }
      if (!seen_ids.insert(id).second) {
        bad.push_back({rec.line_number, "duplicate id " + std::to_string(id)});
        continue;
      }
      if (rec.rejoined) ++rejoined;
      buf.begin_row(1 + kNumColumns + 1);
      buf.int_field(id);
      for (int c = 0; c < kNumColumns; ++c) {
        if (c == 6) {
          if (has_year)
            buf.int_field(year);
          else
            buf.null_field();
        } else {
          buf.text_field(rec.fields[cols[c]]);
        }
      }
      bool found = false;
      for (const char *ext : exts) {
        const std::string path = folder + "/images/" + std::to_string(id) + ext;
        if (!file_exists(path)) continue;
        found = true;
        if (read_file(path, image) && !image.empty()) {
          buf.bytes_field(image.data(), image.size());
          ++images;
        } else {
          buf.null_field();
          ++images_unreadable;
          bad.push_back(
              {rec.line_number, "image " + path + " could not be read (row loaded without it)"});
        }
        break;
      }
      if (!found) {
        buf.null_field();
        ++images_missing;
      }
      ++rows_sent;
      if (buf.data().size() > (8u << 20)) {
        if (PQputCopyData(conn, buf.data().data(), static_cast<int>(buf.data().size())) != 1)
          throw Failure{PQerrorMessage(conn)};
        buf.data().clear();
      }
      if (!quiet && ((i + 1) % (tty ? 2000 : 10000) == 0 || i + 1 == total))
        std::fprintf(stderr, "%slookalike-load: %zu/%zu rows read, %zu images%s", tty ? "\r" : "",
                     i + 1, total, images, tty ? "" : "\n");
    }
    buf.finish();
    if (PQputCopyData(conn, buf.data().data(), static_cast<int>(buf.data().size())) != 1)
      throw Failure{PQerrorMessage(conn)};
    if (!quiet && tty && total > 0) std::fputc('\n', stderr);
    if (PQputCopyEnd(conn, nullptr) != 1) throw Failure{PQerrorMessage(conn)};
    r = PQgetResult(conn);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      std::string msg = PQresultErrorMessage(r);
      PQclear(r);
      throw Failure{msg};
    }
    PQclear(r);
    while ((r = PQgetResult(conn)) != nullptr) PQclear(r);

    // Upsert; a row is rewritten only if its content changed. xmax = 0 marks a fresh insert.
    std::string set_list, distinct_a = "(", distinct_b = "(";
    for (int c = 0; c < kNumColumns; ++c) {
      set_list += std::string(c ? ", " : "") + kColumns[c].sql + " = excluded." + kColumns[c].sql;
      distinct_a += std::string("p.") + kColumns[c].sql + ", ";
      distinct_b += std::string("excluded.") + kColumns[c].sql + ", ";
    }
    set_list += ", image = excluded.image";
    distinct_a += "p.image)";
    distinct_b += "excluded.image)";
    r = PQexec(conn,
               ("WITH up AS (INSERT INTO " + s + ".products AS p SELECT * FROM staging " +
                "ON CONFLICT (id) DO UPDATE SET " + set_list + " WHERE " + distinct_a +
                " IS DISTINCT FROM " + distinct_b + " RETURNING (xmax = 0) AS fresh) " +
                "SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) FROM up")
                   .c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      std::string msg = PQresultErrorMessage(r);
      PQclear(r);
      throw Failure{msg};
    }
    inserted = std::atol(PQgetvalue(r, 0, 0));
    updated = std::atol(PQgetvalue(r, 0, 1));
    PQclear(r);
    exec(conn, "COMMIT");
    exec(conn, "ANALYZE " + s + ".products");
  } catch (const Failure &f) {
    if (!quiet && tty) std::fputc('\n', stderr);
    std::fprintf(stderr, "lookalike-load: %s", f.message.c_str());
    if (f.message.empty() || f.message.back() != '\n') std::fputc('\n', stderr);
    std::fprintf(stderr, "lookalike-load: nothing was changed (the transaction was rolled back)\n");
    PQfinish(conn);
    return 1;
  }
  PQfinish(conn);

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t i = 0; i < bad.size() && i < 20; ++i)
    std::fprintf(stderr, "lookalike-load: line %zu: %s\n", bad[i].line_number,
                 bad[i].reason.c_str());
  if (bad.size() > 20) std::fprintf(stderr, "lookalike-load: ... and %zu more\n", bad.size() - 20);
  std::fprintf(stderr,
               "lookalike-load: %s.products: %zu rows read (%zu with commas rejoined into "
               "productDisplayName), %ld inserted, %ld updated, %zu unchanged; %zu images, %zu "
               "missing, %zu unreadable; %zu unreadable lines skipped; %.1f s\n",
               schema.c_str(), rows_sent, rejoined, inserted, updated,
               rows_sent - static_cast<size_t>(inserted + updated), images, images_missing,
               images_unreadable, bad.size() - images_unreadable, secs);
  return 0;
}
