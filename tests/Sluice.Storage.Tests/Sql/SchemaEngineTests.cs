using System.Data.Common;
using Microsoft.Data.Sqlite;
using Sluice.Storage.Sql;

namespace Sluice.Storage.Tests.Sql;

/// <summary>The schema engine on SQLite (LXD's acceptance checks for its engine, with Sluice's changes: one transaction per update, the patch after the updates and removed only once applied).</summary>
public sealed class SchemaEngineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sluice-schema-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private SqliteConnection Open(string name = "db")
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(_dir, name + ".sqlite"), Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    private static SchemaUpdate Create(string table) => (tx, ct) => SqlDialect.ExecuteAsync(tx, $"CREATE TABLE {table} (id INTEGER PRIMARY KEY, value TEXT)", ct);

    private static async Task<List<long>> VersionsAsync(SqliteConnection connection)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT version FROM {SqlDialect.SchemaTable} ORDER BY version";
        var versions = new List<long>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            versions.Add(reader.GetInt64(0));
        }

        return versions;
    }

    private static async Task<bool> TableExistsAsync(SqliteConnection connection, string table)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $name";
        command.Parameters.AddWithValue("$name", table);
        return (long)(await command.ExecuteScalarAsync())! == 1;
    }

    private static async Task ExecAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task No_updates_creates_the_schema_table_and_reports_version_0()
    {
        await using var db = Open();
        Assert.Equal(0, await new SchemaEngine([]).EnsureAsync(db));
        Assert.True(await TableExistsAsync(db, SqlDialect.SchemaTable));
        Assert.Empty(await VersionsAsync(db));
    }

    [Fact]
    public async Task Updates_apply_in_order_once_each()
    {
        await using var db = Open();
        var engine = new SchemaEngine([Create("a"), Create("b"), Create("c")]);
        Assert.Equal(0, await engine.EnsureAsync(db));
        Assert.Equal([1, 2, 3], await VersionsAsync(db));
        Assert.True(await TableExistsAsync(db, "c"));

        Assert.Equal(3, await engine.EnsureAsync(db)); // nothing left to do (a second CREATE TABLE would fail)
        Assert.Equal([1, 2, 3], await VersionsAsync(db));
    }

    [Fact]
    public async Task A_database_at_version_2_gets_only_update_3()
    {
        await using var db = Open();
        await new SchemaEngine([Create("a"), Create("b")]).EnsureAsync(db);
        var ran = new List<int>();
        var engine = new SchemaEngine([Create("a"), Create("b"), Create("c")]) { Hook = (v, _, _) => { ran.Add(v); return Task.CompletedTask; } };
        Assert.Equal(2, await engine.EnsureAsync(db));
        Assert.Equal([2], ran); // the hook gets the version each update starts from
        Assert.Equal([1, 2, 3], await VersionsAsync(db));
    }

    [Fact]
    public async Task A_database_newer_than_the_binary_is_refused_unchanged()
    {
        await using var db = Open();
        await new SchemaEngine([Create("a"), Create("b"), Create("c"), Create("d"), Create("e")]).EnsureAsync(db);
        var error = await Assert.ThrowsAsync<SchemaException>(() => new SchemaEngine([Create("a"), Create("b"), Create("c")]).EnsureAsync(db));
        Assert.Contains("schema version 5 is more recent than this binary's 3", error.Message, StringComparison.Ordinal);
        Assert.Contains("newer Sluice", error.Message, StringComparison.Ordinal);
        Assert.Equal([1, 2, 3, 4, 5], await VersionsAsync(db));
    }

    [Fact]
    public async Task A_hole_in_the_recorded_versions_is_refused()
    {
        await using var db = Open();
        await new SchemaEngine([Create("a"), Create("b"), Create("c")]).EnsureAsync(db);
        await ExecAsync(db, $"DELETE FROM {SqlDialect.SchemaTable} WHERE version = 2");
        var error = await Assert.ThrowsAsync<SchemaException>(() => new SchemaEngine([Create("a"), Create("b"), Create("c")]).EnsureAsync(db));
        Assert.Contains("Missing schema updates: 2 to 2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failing_update_keeps_the_versions_before_it_and_names_itself()
    {
        await using var db = Open();
        SchemaUpdate broken = (tx, ct) => SqlDialect.ExecuteAsync(tx, "CREATE TABLE b (id INTEGER PRIMARY KEY); INSERT INTO nowhere VALUES (1)", ct);
        var error = await Assert.ThrowsAsync<SchemaException>(() => new SchemaEngine([Create("a"), broken, Create("c")]).EnsureAsync(db));
        Assert.Contains("update 2 (from version 1 to 2)", error.Message, StringComparison.Ordinal);
        Assert.Equal([1], await VersionsAsync(db));
        Assert.True(await TableExistsAsync(db, "a"));
        Assert.False(await TableExistsAsync(db, "b")); // rolled back with its update
        Assert.False(await TableExistsAsync(db, "c"));

        // The fixed binary continues from version 1.
        Assert.Equal(1, await new SchemaEngine([Create("a"), Create("b"), Create("c")]).EnsureAsync(db));
        Assert.Equal([1, 2, 3], await VersionsAsync(db));
    }

    [Fact]
    public async Task A_failing_hook_rolls_its_update_back()
    {
        await using var db = Open();
        var engine = new SchemaEngine([Create("a"), Create("b")]) { Hook = (v, _, _) => v == 1 ? throw new InvalidOperationException("hook says no") : Task.CompletedTask };
        var error = await Assert.ThrowsAsync<SchemaException>(() => engine.EnsureAsync(db));
        Assert.Contains("update 2 (from version 1 to 2)", error.Message, StringComparison.Ordinal);
        Assert.Equal("hook says no", error.InnerException!.Message);
        Assert.Equal([1], await VersionsAsync(db));
        Assert.False(await TableExistsAsync(db, "b"));
    }

    [Fact]
    public async Task A_fresh_database_gets_the_whole_schema_in_one_step_and_later_updates_on_top()
    {
        await using var db = Open();
        var ran = 0;
        SchemaUpdate counted(string table) => async (tx, ct) =>
        {
            ran++;
            await Create(table)(tx, ct);
        };
        var fresh = "CREATE TABLE a (id INTEGER PRIMARY KEY, value TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, value TEXT);";
        Assert.Equal(0, await new SchemaEngine([counted("a"), counted("b")]) { Fresh = fresh }.EnsureAsync(db));
        Assert.Equal(0, ran);
        Assert.Equal([2], await VersionsAsync(db));
        Assert.True(await TableExistsAsync(db, "b"));

        Assert.Equal(2, await new SchemaEngine([counted("a"), counted("b"), counted("c")]) { Fresh = fresh + "CREATE TABLE c (id INTEGER PRIMARY KEY, value TEXT);" }.EnsureAsync(db));
        Assert.Equal(1, ran); // only update 3: the fresh schema is for empty databases
        Assert.Equal([2, 3], await VersionsAsync(db));
    }

    [Fact]
    public async Task The_patch_file_runs_after_the_updates_and_is_removed_only_once_applied()
    {
        await using var db = Open();
        var patch = Path.Combine(_dir, "patch.global.sql");
        var order = new List<int>();
        Task Hook(int v, DbTransaction tx, CancellationToken ct)
        {
            order.Add(v);
            return Task.CompletedTask;
        }

        await File.WriteAllTextAsync(patch, "INSERT INTO a (value) VALUES ('patched');");
        await new SchemaEngine([Create("a")]) { PatchFile = patch, Hook = Hook }.EnsureAsync(db); // the patch needs table a: it runs after update 1
        Assert.Equal([0, -1], order);
        Assert.False(File.Exists(patch));
        await using (var command = db.CreateCommand())
        {
            command.CommandText = "SELECT value FROM a";
            Assert.Equal("patched", await command.ExecuteScalarAsync());
        }

        // Garbage: refused, nothing applied, and the file stays for the operator to fix.
        await File.WriteAllTextAsync(patch, "INSERT INTO a (value) VALUES ('half'); THIS IS NOT SQL;");
        var error = await Assert.ThrowsAsync<SchemaException>(() => new SchemaEngine([Create("a")]) { PatchFile = patch }.EnsureAsync(db));
        Assert.Contains("patch.global.sql failed", error.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(patch));
        await using (var command = db.CreateCommand())
        {
            command.CommandText = "SELECT count(*) FROM a";
            Assert.Equal(1L, await command.ExecuteScalarAsync());
        }

        File.Delete(patch);
        await new SchemaEngine([Create("a")]) { PatchFile = patch }.EnsureAsync(db); // no file: nothing to do
    }

    [Fact]
    public async Task A_check_that_says_wait_keeps_its_writes_and_applies_no_update()
    {
        await using var db = Open();
        await new SchemaEngine([Create("a")]).EnsureAsync(db);
        var engine = new SchemaEngine([Create("a"), Create("b")])
        {
            Check = async (current, tx, ct) =>
            {
                Assert.Equal(1, current);
                await SqlDialect.ExecuteAsync(tx, "INSERT INTO a (value) VALUES ('seen')", ct);
                throw new SchemaWaitException("not yet");
            },
        };
        await Assert.ThrowsAsync<SchemaWaitException>(() => engine.EnsureAsync(db));
        Assert.Equal([1], await VersionsAsync(db));
        await using var command = db.CreateCommand();
        command.CommandText = "SELECT value FROM a";
        Assert.Equal("seen", await command.ExecuteScalarAsync());

        // Any other error from the check rolls its writes back.
        var failing = new SchemaEngine([Create("a"), Create("b")])
        {
            Check = async (_, tx, ct) =>
            {
                await SqlDialect.ExecuteAsync(tx, "INSERT INTO a (value) VALUES ('lost')", ct);
                throw new InvalidOperationException("broken");
            },
        };
        await Assert.ThrowsAsync<InvalidOperationException>(() => failing.EnsureAsync(db));
        command.CommandText = "SELECT count(*) FROM a";
        Assert.Equal(1L, await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Two_processes_updating_one_database_apply_each_update_once()
    {
        await using var first = Open("shared");
        await using var second = Open("shared");
        var engine = new SchemaEngine([Create("a"), Create("b"), Create("c")]);
        await Task.WhenAll(Task.Run(() => engine.EnsureAsync(first)), Task.Run(() => engine.EnsureAsync(second)));
        Assert.Equal([1, 2, 3], await VersionsAsync(first));
    }
}
