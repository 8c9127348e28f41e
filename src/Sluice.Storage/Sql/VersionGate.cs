using System.Data.Common;
using System.Globalization;

namespace Sluice.Storage.Sql;

/// <summary>What a broker's binary brings: the schema version of its store and the count of API extensions it serves.</summary>
public readonly record struct BrokerVersion(int Schema, int ApiExtensions)
{
    public override string ToString() => $"schema {Schema}, API extensions {ApiExtensions}";

    /// <summary>1: this is ahead (not behind on either, ahead on one); -1: behind on both or one; 0: equal; null: ahead on one and behind on the other.</summary>
    public int? CompareTo(BrokerVersion other)
    {
        var schema = Schema.CompareTo(other.Schema);
        var api = ApiExtensions.CompareTo(other.ApiExtensions);
        return (schema, api) switch
        {
            (0, 0) => 0,
            _ when schema >= 0 && api >= 0 => 1,
            _ when schema <= 0 && api <= 0 => -1,
            _ => null,
        };
    }

    /// <summary>
    /// The upgrade rule against the other brokers' versions, for any store that records them: throws
    /// <see cref="SchemaException"/> when this broker is behind one of them or the versions are mixed, and returns
    /// "name (label)" of each one behind this broker (it waits for them). Labels are what the messages show.
    /// </summary>
    /// <param name="selfLabel">This broker as the messages show it: "name: version".</param>
    /// <param name="others">The other brokers: name, version, and label for the messages.</param>
    /// <param name="relation">How the brokers are related, appended to "broker NAME (LABEL)": ", which shares its store".</param>
    public IReadOnlyList<string> Judge(string selfLabel, IEnumerable<(string Name, BrokerVersion Version, string Label)> others, string relation)
    {
        var behind = new List<string>();
        foreach (var (name, version, label) in others)
        {
            switch (CompareTo(version))
            {
                case 1:
                    behind.Add($"{name} ({label})");
                    break;
                case -1:
                    throw new SchemaException($"This broker ({selfLabel}) is behind broker {name} ({label}){relation}: upgrade this broker to the Sluice version {name} runs.");
                case null:
                    throw new SchemaException($"This broker ({selfLabel}) and broker {name} ({label}){relation} have inconsistent versions (ahead on one count, behind on the other): run one Sluice version on every broker.");
            }
        }

        return behind;
    }
}

/// <summary>
/// The version gate of brokers that share one store (LXD's cluster upgrade rule): each broker records its
/// <see cref="BrokerVersion"/> in <see cref="NodesTable"/> before any schema update; a broker ahead of another waits
/// (<see cref="SchemaWaitException"/>) until that one is upgraded, a broker behind another refuses to start
/// (<see cref="SchemaException"/>) and says to upgrade it, and a mix (ahead on one count, behind on the other) is refused.
/// </summary>
public static class VersionGate
{
    /// <summary>The brokers sharing the store: name, address, version, last start.</summary>
    public const string NodesTable = "sluice_nodes";

    /// <summary>The check for <see cref="SchemaEngine.Check"/>: records <paramref name="self"/> at <paramref name="target"/>, then compares.</summary>
    public static SchemaCheck Check(string self, string address, BrokerVersion target) => async (current, transaction, cancellationToken) =>
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(self);
        var driver = SqlDialect.DriverOf(transaction.Connection!);
        await SqlDialect.ExecuteAsync(transaction, CreateNodesTable(driver), cancellationToken).ConfigureAwait(false);
        object now = driver == SqlDriver.Postgres ? DateTime.UtcNow : DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        await using (var upsert = SqlDialect.Command(
            transaction,
            $"INSERT INTO {NodesTable} (name, address, schema_version, api_extensions, started_at) VALUES (@p0, @p1, @p2, @p3, @p4) " +
            "ON CONFLICT (name) DO UPDATE SET address = excluded.address, schema_version = excluded.schema_version, api_extensions = excluded.api_extensions, started_at = excluded.started_at",
            self,
            address,
            target.Schema,
            target.ApiExtensions,
            now))
        {
            await upsert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        var others = new List<(string Name, BrokerVersion Version)>();
        await using (var select = SqlDialect.Command(transaction, $"SELECT name, schema_version, api_extensions FROM {NodesTable} WHERE name <> @p0 ORDER BY name", self))
        await using (var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                others.Add((reader.GetString(0), new BrokerVersion(Convert.ToInt32(reader.GetValue(1), CultureInfo.InvariantCulture), Convert.ToInt32(reader.GetValue(2), CultureInfo.InvariantCulture))));
            }
        }

        var behind = target.Judge($"{self}: {target}", others.Select(o => (o.Name, o.Version, o.Version.ToString())), ", which shares its store");
        if (behind.Count > 0)
        {
            throw new SchemaWaitException($"Some brokers are behind this broker ({self}: {target}): {string.Join(", ", behind)}. Waiting for them to be upgraded before updating the shared store.");
        }
    };

    /// <summary>Forgets a broker that left for good, so the gate no longer waits for it.</summary>
    public static async Task<bool> RemoveAsync(DbTransaction transaction, string name, CancellationToken cancellationToken = default)
    {
        await SqlDialect.ExecuteAsync(transaction, CreateNodesTable(SqlDialect.DriverOf(transaction.Connection!)), cancellationToken).ConfigureAwait(false);
        await using var delete = SqlDialect.Command(transaction, $"DELETE FROM {NodesTable} WHERE name = @p0", name);
        return await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    /// <summary>
    /// Runs <paramref name="engine"/> until it is not told to wait: each wait is reported through <paramref name="waiting"/>
    /// and retried after <paramref name="interval"/> on a new connection from <paramref name="open"/>.
    /// </summary>
    public static async Task<int> EnsureWaitingAsync(SchemaEngine engine, Func<CancellationToken, Task<DbConnection>> open, Action<SchemaWaitException> waiting, TimeSpan interval, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(open);
        ArgumentNullException.ThrowIfNull(waiting);
        while (true)
        {
            var connection = await open(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                try
                {
                    return await engine.EnsureAsync(connection, cancellationToken).ConfigureAwait(false);
                }
                catch (SchemaWaitException wait)
                {
                    waiting(wait);
                }
            }

            await Task.Delay(interval, cancellationToken).ConfigureAwait(false);
        }
    }

    private static string CreateNodesTable(SqlDriver driver) =>
        $"CREATE TABLE IF NOT EXISTS {NodesTable} (name TEXT PRIMARY KEY, address TEXT NOT NULL, schema_version INTEGER NOT NULL, api_extensions INTEGER NOT NULL, started_at {(driver == SqlDriver.Postgres ? "TIMESTAMPTZ" : "TEXT")} NOT NULL)";
}
