package dev.tally.peer;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.List;
import java.util.function.Function;

/**
 * One task's PostgreSQL connection: upserts rollup totals in JDBC batches (rewritten by the
 * driver into multi-row INSERTs) together with the task's input position, in one transaction.
 */
final class PgSink implements AutoCloseable {
  private final Connection connection;
  private final int part;
  private final PreparedStatement types;
  private final PreparedStatement pages;
  private final PreparedStatement users;
  private final PreparedStatement progress;

  /** Creates the peer's tables in `schema` if they are not there yet. */
  static void createTables(String jdbcUrl, String schema) throws SQLException {
    try (Connection c = DriverManager.getConnection(jdbcUrl);
        Statement s = c.createStatement()) {
      s.execute("CREATE SCHEMA IF NOT EXISTS " + schema);
      s.execute(
          "CREATE TABLE IF NOT EXISTS " + schema + ".events_by_type (minute timestamptz NOT NULL,"
              + " project text NOT NULL, type text NOT NULL, part int NOT NULL, count bigint NOT NULL,"
              + " PRIMARY KEY (minute, project, type, part))");
      s.execute(
          "CREATE TABLE IF NOT EXISTS " + schema + ".page_views (minute timestamptz NOT NULL,"
              + " project text NOT NULL, page_url text NOT NULL, part int NOT NULL, count bigint NOT NULL,"
              + " PRIMARY KEY (minute, project, page_url, part))");
      s.execute(
          "CREATE TABLE IF NOT EXISTS " + schema + ".minute_users (minute timestamptz NOT NULL,"
              + " project text NOT NULL, part int NOT NULL, users bigint NOT NULL,"
              + " PRIMARY KEY (minute, project, part))");
      // next_offset: the input records of partition `part` that the rows above account for.
      s.execute(
          "CREATE TABLE IF NOT EXISTS " + schema + ".progress (application_id text NOT NULL,"
              + " part int NOT NULL, next_offset bigint NOT NULL, committed_at timestamptz NOT NULL,"
              + " PRIMARY KEY (application_id, part))");
    }
  }

  PgSink(String jdbcUrl, String schema, String applicationId, int part) {
    this.part = part;
    try {
      connection = DriverManager.getConnection(jdbcUrl);
      connection.setAutoCommit(false);
      types =
          connection.prepareStatement(
              "INSERT INTO " + schema + ".events_by_type (minute, project, type, part, count) VALUES (?, ?, ?, ?, ?)"
                  + " ON CONFLICT (minute, project, type, part) DO UPDATE SET count = excluded.count");
      pages =
          connection.prepareStatement(
              "INSERT INTO " + schema + ".page_views (minute, project, page_url, part, count) VALUES (?, ?, ?, ?, ?)"
                  + " ON CONFLICT (minute, project, page_url, part) DO UPDATE SET count = excluded.count");
      users =
          connection.prepareStatement(
              "INSERT INTO " + schema + ".minute_users (minute, project, part, users) VALUES (?, ?, ?, ?)"
                  + " ON CONFLICT (minute, project, part) DO UPDATE SET users = excluded.users");
      progress =
          connection.prepareStatement(
              "INSERT INTO " + schema + ".progress (application_id, part, next_offset, committed_at)"
                  + " VALUES (?, ?, ?, clock_timestamp()) ON CONFLICT (application_id, part)"
                  + " DO UPDATE SET next_offset = excluded.next_offset, committed_at = excluded.committed_at");
      progress.setString(1, applicationId);
      progress.setInt(2, part);
    } catch (SQLException err) {
      throw new IllegalStateException("cannot open the peer's PostgreSQL connection", err);
    }
  }

  /** Writes the totals of `keys` (RollupProcessor's key layout) and the position, atomically. */
  void write(List<String> keys, Function<String, Long> totals, long nextOffset) throws SQLException {
    boolean anyTypes = false, anyPages = false, anyUsers = false;
    try {
      for (String key : keys) {
        String[] f = key.split(String.valueOf(RollupProcessor.SEP), 4);
        OffsetDateTime minute = OffsetDateTime.ofInstant(Instant.ofEpochMilli(Long.parseLong(f[1])), ZoneOffset.UTC);
        long total = totals.apply(key);
        switch (f[0]) {
          case "t" -> anyTypes = add(types, minute, f[2], f[3], total);
          case "p" -> anyPages = add(pages, minute, f[2], f[3], total);
          case "u" -> {
            users.setObject(1, minute);
            users.setString(2, f[2]);
            users.setInt(3, part);
            users.setLong(4, total);
            users.addBatch();
            anyUsers = true;
          }
          default -> throw new IllegalStateException("unknown rollup key " + key);
        }
      }
      if (anyTypes) types.executeBatch();
      if (anyPages) pages.executeBatch();
      if (anyUsers) users.executeBatch();
      if (nextOffset >= 0) {
        progress.setLong(3, nextOffset);
        progress.executeUpdate();
      }
      connection.commit();
    } catch (SQLException | RuntimeException err) {
      types.clearBatch();
      pages.clearBatch();
      users.clearBatch();
      connection.rollback();
      throw err;
    }
  }

  private boolean add(PreparedStatement statement, OffsetDateTime minute, String project, String dimension, long total)
      throws SQLException {
    statement.setObject(1, minute);
    statement.setString(2, project);
    statement.setString(3, dimension);
    statement.setInt(4, part);
    statement.setLong(5, total);
    statement.addBatch();
    return true;
  }

  @Override
  public void close() {
    try {
      connection.close();
    } catch (SQLException err) {
      System.err.println("streams-peer: closing PostgreSQL failed: " + err);
    }
  }
}
