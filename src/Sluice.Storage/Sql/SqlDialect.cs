using System.Data.Common;

namespace Sluice.Storage.Sql;

/// <summary>The SQL databases Sluice keeps data in, and what differs between them for Sluice's own tables.</summary>
public enum SqlDriver
{
    /// <summary>SQLite (Microsoft.Data.Sqlite): one file, one writer at a time.</summary>
    Sqlite,

    /// <summary>PostgreSQL (Npgsql).</summary>
    Postgres,
}

/// <summary>The few statements whose text differs between SQLite and PostgreSQL.</summary>
public static class SqlDialect
{
    /// <summary>The table that records applied schema versions (LXD's <c>schema</c> table, prefixed so it can share a database).</summary>
    public const string SchemaTable = "sluice_schema";

    /// <summary>Creates <see cref="SchemaTable"/> when missing.</summary>
    public static string CreateSchemaTable(SqlDriver driver) => driver switch
    {
        SqlDriver.Sqlite => $"CREATE TABLE IF NOT EXISTS {SchemaTable} (id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL UNIQUE, updated_at TEXT NOT NULL)",
        SqlDriver.Postgres => $"CREATE TABLE IF NOT EXISTS {SchemaTable} (id BIGSERIAL PRIMARY KEY, version INTEGER NOT NULL UNIQUE, updated_at TIMESTAMPTZ NOT NULL)",
        _ => throw new ArgumentOutOfRangeException(nameof(driver), driver, null),
    };

    /// <summary>The driver of an open connection, from its type name (the storage assembly references neither driver).</summary>
    public static SqlDriver DriverOf(DbConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var name = connection.GetType().FullName ?? string.Empty;
        if (name.Contains("Sqlite", StringComparison.OrdinalIgnoreCase))
        {
            return SqlDriver.Sqlite;
        }

        if (name.Contains("Npgsql", StringComparison.OrdinalIgnoreCase))
        {
            return SqlDriver.Postgres;
        }

        throw new NotSupportedException($"Sluice keeps SQL data in SQLite or PostgreSQL; a {name} connection is neither");
    }

    /// <summary>A command in <paramref name="transaction"/> with <c>@p0</c>, <c>@p1</c>... bound to <paramref name="values"/> (both drivers accept <c>@name</c>).</summary>
    public static DbCommand Command(DbTransaction transaction, string sql, params object?[] values)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var command = transaction.Connection!.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        for (var i = 0; i < values.Length; i++)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = "@p" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            parameter.Value = values[i] ?? DBNull.Value;
            command.Parameters.Add(parameter);
        }

        return command;
    }

    /// <summary>Runs <paramref name="sql"/> (one or more statements, no parameters) in <paramref name="transaction"/>.</summary>
    public static async Task ExecuteAsync(DbTransaction transaction, string sql, CancellationToken cancellationToken = default)
    {
        await using var command = Command(transaction, sql);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
