using Microsoft.Data.Sqlite;
using Sluice.Storage.Sql;

namespace Sluice.Storage.Tests.Sql;

/// <summary>Brokers sharing one store and declaring different versions (LXD's cluster upgrade rule).</summary>
public sealed class VersionGateTests : IDisposable
{
    private readonly string _path = Path.Combine(Directory.CreateTempSubdirectory("sluice-gate-").FullName, "store.sqlite");

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(_path)!, recursive: true);

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = _path, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    private static SchemaUpdate Create(string table) => (tx, ct) => SqlDialect.ExecuteAsync(tx, $"CREATE TABLE {table} (id INTEGER PRIMARY KEY)", ct);

    private static SchemaEngine Broker(string name, int schema, int api) =>
        new(Enumerable.Range(0, schema).Select(i => Create("t" + i))) { Check = VersionGate.Check(name, name + ":9292", new BrokerVersion(schema, api)) };

    private async Task<(long Schema, long Api)> RowAsync(string name)
    {
        await using var db = Open();
        await using var command = db.CreateCommand();
        command.CommandText = $"SELECT schema_version, api_extensions FROM {VersionGate.NodesTable} WHERE name = $n";
        command.Parameters.AddWithValue("$n", name);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync(), $"no row for {name}");
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    [Fact]
    public async Task Brokers_at_one_version_start_and_record_it()
    {
        foreach (var name in new[] { "a", "b" })
        {
            await using var db = Open();
            await Broker(name, 2, 5).EnsureAsync(db);
        }

        Assert.Equal((2, 5), await RowAsync("a"));
        Assert.Equal((2, 5), await RowAsync("b"));
    }

    [Fact]
    public async Task A_broker_ahead_waits_with_its_version_recorded_until_the_other_is_upgraded()
    {
        foreach (var name in new[] { "a", "b" })
        {
            await using var db = Open();
            await Broker(name, 2, 5).EnsureAsync(db);
        }

        // a is upgraded first: it records its new version, then waits without updating the store.
        await using (var db = Open())
        {
            var wait = await Assert.ThrowsAsync<SchemaWaitException>(() => Broker("a", 3, 6).EnsureAsync(db));
            Assert.Contains("Some brokers are behind this broker (a: schema 3, API extensions 6): b (schema 2, API extensions 5)", wait.Message, StringComparison.Ordinal);
            Assert.Equal(2, await Broker("a", 3, 6).ReadVersionAsync(db));
        }

        Assert.Equal((3, 6), await RowAsync("a"));

        // b restarted on its old binary is now behind: it refuses and says to upgrade it.
        await using (var db = Open())
        {
            var behind = await Assert.ThrowsAsync<SchemaException>(() => Broker("b", 2, 5).EnsureAsync(db));
            Assert.Contains("This broker (b: schema 2, API extensions 5) is behind broker a (schema 3, API extensions 6)", behind.Message, StringComparison.Ordinal);
            Assert.Contains("upgrade this broker", behind.Message, StringComparison.Ordinal);
        }

        // a waits (retrying) while b is upgraded; then both run the new schema, applied once.
        var waits = 0;
        var waiting = VersionGate.EnsureWaitingAsync(
            Broker("a", 3, 6),
            ct => Task.FromResult<System.Data.Common.DbConnection>(Open()),
            _ => Interlocked.Increment(ref waits),
            TimeSpan.FromMilliseconds(20));
        while (Volatile.Read(ref waits) < 2)
        {
            await Task.Delay(10);
        }

        Assert.False(waiting.IsCompleted);
        await using (var db = Open())
        {
            Assert.Equal(2, await Broker("b", 3, 6).EnsureAsync(db));
        }

        Assert.Equal(3, await waiting.WaitAsync(TimeSpan.FromSeconds(30))); // it found the store at 3 and had nothing left to do
    }

    [Fact]
    public async Task A_broker_behind_only_in_api_extensions_refuses_to_start()
    {
        await using (var db = Open())
        {
            await Broker("a", 2, 6).EnsureAsync(db);
        }

        await using var db2 = Open();
        var error = await Assert.ThrowsAsync<SchemaException>(() => Broker("b", 2, 5).EnsureAsync(db2));
        Assert.Contains("is behind broker a", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mixed_versions_are_refused_as_inconsistent()
    {
        await using (var db = Open())
        {
            await Broker("a", 2, 6).EnsureAsync(db);
        }

        await using var db2 = Open();
        var error = await Assert.ThrowsAsync<SchemaException>(() => Broker("b", 3, 5).EnsureAsync(db2));
        Assert.Contains("inconsistent versions", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_removed_broker_no_longer_holds_the_upgrade_back()
    {
        foreach (var name in new[] { "a", "b" })
        {
            await using var db = Open();
            await Broker(name, 1, 1).EnsureAsync(db);
        }

        await using (var db = Open())
        await using (var tx = await db.BeginTransactionAsync())
        {
            Assert.True(await VersionGate.RemoveAsync(tx, "b"));
            await tx.CommitAsync();
        }

        await using var db2 = Open();
        Assert.Equal(1, await Broker("a", 2, 1).EnsureAsync(db2));
    }
}
