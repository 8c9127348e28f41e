// Failure policy: every update runs in its own transaction together with the row that records it, so a database is
// always at a whole version; a failed update leaves the versions before it applied and names the one that failed.
// A database at a version this binary does not know, or with a hole in its recorded versions, is refused before
// anything is written. The patch file is removed only after its transaction commits (LXD removes it even when the
// transaction rolls back, and the fix is lost).
using System.Data.Common;
using System.Globalization;

namespace Sluice.Storage.Sql;

/// <summary>One schema update: version N is the Nth of the list, run in <paramref name="transaction"/>.</summary>
public delegate Task SchemaUpdate(DbTransaction transaction, CancellationToken cancellationToken);

/// <summary>
/// A check run before any update with the current version (0: an empty database): it may write (a broker records its
/// own version), throw <see cref="SchemaWaitException"/> to stop without updating while keeping what it wrote, or throw
/// anything else to roll back.
/// </summary>
public delegate Task SchemaCheck(int current, DbTransaction transaction, CancellationToken cancellationToken);

/// <summary>
/// Ordered schema updates for a database Sluice owns, after LXD's schema engine: the applied versions are rows of
/// <see cref="SqlDialect.SchemaTable"/>; an empty database gets <see cref="Fresh"/> (the whole current schema) in one
/// step when it is set; a <see cref="Check"/> runs before the updates; a <see cref="PatchFile"/> runs after them and is
/// then removed.
/// </summary>
public sealed class SchemaEngine
{
    private readonly SchemaUpdate[] _updates;

    /// <param name="updates">Version N is <c>updates[N - 1]</c>; never reorder or remove one that has shipped.</param>
    public SchemaEngine(IEnumerable<SchemaUpdate> updates)
    {
        ArgumentNullException.ThrowIfNull(updates);
        _updates = updates.ToArray();
        if (_updates.Any(u => u is null))
        {
            throw new ArgumentException("a schema update is null", nameof(updates));
        }
    }

    /// <summary>The version this binary brings a database to: the number of updates.</summary>
    public int Version => _updates.Length;

    /// <summary>SQL that creates the current schema on an empty database (instead of every update); null runs the updates.</summary>
    public string? Fresh { get; init; }

    /// <summary>Runs before the updates; see <see cref="SchemaCheck"/>.</summary>
    public SchemaCheck? Check { get; init; }

    /// <summary>Runs before each update with the version it starts from, and with -1 before the patch file; an error rolls that step back.</summary>
    public Func<int, DbTransaction, CancellationToken, Task>? Hook { get; init; }

    /// <summary>A file of SQL statements (LXD's <c>patch.global.sql</c>) run after the updates, in one transaction, then deleted. Null: none.</summary>
    public string? PatchFile { get; init; }

    /// <summary>
    /// Brings the database to <see cref="Version"/>: returns the version it had before (0 for an empty one).
    /// </summary>
    /// <exception cref="SchemaWaitException">The check stopped the upgrade for now (its writes are kept).</exception>
    /// <exception cref="SchemaException">The database is newer than this binary, has a hole in its versions, or an update, the fresh schema or the patch failed.</exception>
    public async Task<int> EnsureAsync(DbConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var driver = SqlDialect.DriverOf(connection);
        int initial;
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
        {
            await SqlDialect.ExecuteAsync(transaction, SqlDialect.CreateSchemaTable(driver), cancellationToken).ConfigureAwait(false);
            initial = await CurrentVersionAsync(transaction, cancellationToken).ConfigureAwait(false);
            if (Check is { } check)
            {
                try
                {
                    await check(initial, transaction, cancellationToken).ConfigureAwait(false);
                }
                catch (SchemaWaitException)
                {
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false); // keep what the check wrote
                    throw;
                }
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        var current = initial;
        if (current == 0 && Fresh is { } fresh && _updates.Length > 0)
        {
            current = await StepAsync(connection, current, _updates.Length, async (transaction, ct) =>
            {
                await SqlDialect.ExecuteAsync(transaction, fresh, ct).ConfigureAwait(false);
            }, "the fresh schema", hookVersion: null, cancellationToken).ConfigureAwait(false);
        }

        while (current < _updates.Length)
        {
            var update = _updates[current];
            current = await StepAsync(connection, current, current + 1, (transaction, ct) => update(transaction, ct), $"update {current + 1}", hookVersion: current, cancellationToken).ConfigureAwait(false);
        }

        if (PatchFile is { } patchFile && File.Exists(patchFile))
        {
            await ApplyPatchAsync(connection, patchFile, cancellationToken).ConfigureAwait(false);
        }

        return initial;
    }

    /// <summary>The version a database is at (0: none recorded), checked against this binary; no writes.</summary>
    public async Task<int> ReadVersionAsync(DbConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await SqlDialect.ExecuteAsync(transaction, SqlDialect.CreateSchemaTable(SqlDialect.DriverOf(connection)), cancellationToken).ConfigureAwait(false);
        var version = await CurrentVersionAsync(transaction, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return version;
    }

    /// <summary>
    /// Runs one step from <paramref name="from"/> to <paramref name="to"/> in its own transaction with its version row.
    /// When it fails because another process applied the same step meanwhile (two brokers starting on one database),
    /// the version that process reached is taken instead.
    /// </summary>
    private async Task<int> StepAsync(DbConnection connection, int from, int to, SchemaUpdate step, string what, int? hookVersion, CancellationToken cancellationToken)
    {
        try
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var now = await CurrentVersionAsync(transaction, cancellationToken).ConfigureAwait(false);
            if (now != from)
            {
                return now; // another process moved it; the loop goes on from there
            }

            if (hookVersion is { } version && Hook is { } hook)
            {
                await hook(version, transaction, cancellationToken).ConfigureAwait(false);
            }

            await step(transaction, cancellationToken).ConfigureAwait(false);
            await RecordAsync(transaction, to, cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return to;
        }
        catch (Exception ex) when (ex is DbException or InvalidOperationException)
        {
            var now = await ReadVersionAsync(connection, cancellationToken).ConfigureAwait(false);
            if (now >= to)
            {
                return now;
            }

            throw new SchemaException($"Failed to apply {what} (from version {from} to {to}); the database stays at version {from}: {ex.Message}", ex);
        }
    }

    private async Task ApplyPatchAsync(DbConnection connection, string patchFile, CancellationToken cancellationToken)
    {
        var sql = await File.ReadAllTextAsync(patchFile, cancellationToken).ConfigureAwait(false);
        try
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            if (Hook is { } hook)
            {
                await hook(-1, transaction, cancellationToken).ConfigureAwait(false);
            }

            if (!string.IsNullOrWhiteSpace(sql))
            {
                await SqlDialect.ExecuteAsync(transaction, sql, cancellationToken).ConfigureAwait(false);
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (DbException ex)
        {
            throw new SchemaException($"The patch file {patchFile} failed and was not applied (it is kept; fix or remove it): {ex.Message}", ex);
        }

        File.Delete(patchFile);
    }

    private async Task<int> CurrentVersionAsync(DbTransaction transaction, CancellationToken cancellationToken)
    {
        var versions = new List<int>();
        await using (var command = SqlDialect.Command(transaction, $"SELECT version FROM {SqlDialect.SchemaTable} ORDER BY version"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                versions.Add(Convert.ToInt32(reader.GetValue(0), CultureInfo.InvariantCulture));
            }
        }

        if (versions.Count == 0)
        {
            return 0;
        }

        var current = versions[^1];
        if (current > _updates.Length)
        {
            throw new SchemaException($"The database's schema version {current} is more recent than this binary's {_updates.Length}: it was written by a newer Sluice. Run that version (or newer) instead; Sluice never downgrades a database.");
        }

        // After a fresh schema there is one row at its version; otherwise every version from the first row up.
        var expected = versions[0];
        foreach (var version in versions)
        {
            if (version != expected)
            {
                throw new SchemaException($"Missing schema updates: {expected} to {version - 1} are not recorded, but {version} is. The database was changed outside Sluice; restore it from a backup.");
            }

            expected++;
        }

        return current;
    }

    private static async Task RecordAsync(DbTransaction transaction, int version, CancellationToken cancellationToken)
    {
        var driver = SqlDialect.DriverOf(transaction.Connection!);
        object now = driver == SqlDriver.Postgres ? DateTime.UtcNow : DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        await using var command = SqlDialect.Command(transaction, $"INSERT INTO {SqlDialect.SchemaTable} (version, updated_at) VALUES (@p0, @p1)", version, now);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>A schema could not be brought to this binary's version; the message says why and what to do.</summary>
public sealed class SchemaException : Exception
{
    public SchemaException(string message)
        : base(message)
    {
    }

    public SchemaException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>The schema check stopped the upgrade for now (LXD's graceful abort, HTTP 412): try again later; nothing was updated, what the check wrote was kept.</summary>
public sealed class SchemaWaitException : Exception
{
    public SchemaWaitException(string message)
        : base(message)
    {
    }

    public SchemaWaitException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
