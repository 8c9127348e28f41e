using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sluice.Cli.Tests;

public class PubSubTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    [Fact]
    public async Task Values_from_arguments_are_acked_one_per_line_and_read_back_in_order()
    {
        await broker.RunOkAsync("stream", "create", "greetings", "--subject", "greetings");

        Assert.Equal(["partition 0 offset 0", "partition 0 offset 1", "partition 0 offset 2"],
            await broker.RunOkAsync("pub", "greetings", "hello", "hej", "hola"));

        var lines = await broker.RunOkAsync("sub", "greetings", "--from", "earliest", "--count", "3");
        Assert.Equal(["0\t0\t\thello", "0\t1\t\thej", "0\t2\t\thola"], lines);

        Assert.Equal(["0\t1\t\thej"], await broker.RunOkAsync("sub", "greetings", "--from", "offset:1", "-n", "1"));
        Assert.Equal(["0\t2\t\thola"], await broker.RunOkAsync("sub", "greetings", "--from", "latest", "--stop-at-latest"));
    }

    [Fact]
    public async Task Ten_thousand_lines_from_stdin_are_published_and_come_back_exactly()
    {
        const int Count = 10_000;
        await broker.RunOkAsync("stream", "create", "lines", "--subject", "lines");
        var input = new StringBuilder();
        for (var i = 0; i < Count; i++)
        {
            input.Append(CultureInfo.InvariantCulture, $"line {i} {new string('x', i % 50)}\n");
        }

        var (code, pub) = await broker.RunWithInputAsync(input.ToString(), "pub", "lines");
        await using (pub)
        {
            Assert.True(code == 0, pub.Transcript());
            var summary = Assert.Single(pub.Stdout);
            Assert.StartsWith($"published {Count} messages to lines in ", summary, StringComparison.Ordinal);
            Assert.EndsWith("offsets partition 0: 0-9999", summary, StringComparison.Ordinal);
            Assert.Empty(pub.Stderr);
        }

        var messages = await broker.RunOkAsync("sub", "lines", "--from", "earliest", "--count", Count.ToString(CultureInfo.InvariantCulture), "-o", "json");
        Assert.Equal(Count, messages.Count);
        for (var i = 0; i < Count; i++)
        {
            using var message = JsonDocument.Parse(messages[i]);
            Assert.Equal(i, message.RootElement.GetProperty("offset").GetInt64());
            Assert.Equal($"line {i} {new string('x', i % 50)}", message.RootElement.GetProperty("value").GetString());
        }
    }

    [Fact]
    public async Task Json_output_carries_keys_headers_and_acks()
    {
        await broker.RunOkAsync("stream", "create", "keyed", "--subject", "keyed");

        var acks = await broker.RunOkAsync("pub", "keyed", "a", "b", "--key", "user-7", "--header", "trace=abc", "-H", "n=1", "--ack-policy", "all", "-o", "json");
        Assert.Equal(2, acks.Count);
        for (var i = 0; i < 2; i++)
        {
            using var ack = JsonDocument.Parse(acks[i]);
            Assert.Equal(i, ack.RootElement.GetProperty("index").GetInt64());
            Assert.Equal("keyed", ack.RootElement.GetProperty("stream").GetString());
            Assert.Equal(0, ack.RootElement.GetProperty("partition").GetInt32());
            Assert.Equal(i, ack.RootElement.GetProperty("offset").GetInt64());
        }

        var lines = await broker.RunOkAsync("sub", "keyed", "--from", "earliest", "--stop-at-latest", "--output", "json");
        Assert.Equal(2, lines.Count);
        using var first = JsonDocument.Parse(lines[0]);
        var root = first.RootElement;
        Assert.Equal("keyed", root.GetProperty("stream").GetString());
        Assert.Equal(0, root.GetProperty("partition").GetInt32());
        Assert.Equal(0, root.GetProperty("offset").GetInt64());
        Assert.Equal("utf8", root.GetProperty("encoding").GetString());
        Assert.Equal("user-7", root.GetProperty("key").GetString());
        Assert.Equal("a", root.GetProperty("value").GetString());
        Assert.Equal("abc", root.GetProperty("headers").GetProperty("trace").GetString());
        Assert.Equal("1", root.GetProperty("headers").GetProperty("n").GetString());
        var timestamp = DateTimeOffset.Parse(root.GetProperty("timestamp").GetString()!, CultureInfo.InvariantCulture);
        Assert.InRange(timestamp, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(1));

        var text = await broker.RunOkAsync("sub", "keyed", "--from", "earliest", "--stop-at-latest", "--headers");
        // Like Liftbridge, the server adds the NATS subject and reply headers; the client gives each message an id.
        Assert.All(text, line => Assert.Matches("\tSluice-Msg-Id=[0-9A-Za-z]{22},", line));
        text = [.. text.Select(line => Regex.Replace(line, "Sluice-Msg-Id=[0-9A-Za-z]{22},", ""))];
        Assert.Equal(["0\t0\tuser-7\ta\tn=1,reply=,subject=keyed,trace=abc", "0\t1\tuser-7\tb\tn=1,reply=,subject=keyed,trace=abc"], text);
    }

    [Fact]
    public async Task Unprintable_values_are_shown_as_base64_in_text_and_escaped_in_json()
    {
        await broker.RunOkAsync("stream", "create", "tabs", "--subject", "tabs");
        await broker.RunOkAsync("pub", "tabs", "a\tb");

        var text = await broker.RunOkAsync("sub", "tabs", "--from", "earliest", "--count", "1");
        Assert.Equal(["0\t0\t\tbase64:" + Convert.ToBase64String("a\tb"u8)], text);

        using var json = JsonDocument.Parse(Assert.Single(await broker.RunOkAsync("sub", "tabs", "--from", "earliest", "--count", "1", "-o", "json")));
        Assert.Equal("a\tb", json.RootElement.GetProperty("value").GetString());
    }

    [Fact]
    public async Task Round_robin_and_key_partitioning_spread_messages_over_partitions()
    {
        await broker.RunOkAsync("stream", "create", "spread", "--subject", "spread", "--partitions", "3");

        var acks = await broker.RunOkAsync("pub", "spread", "1", "2", "3", "4", "5", "6", "--round-robin", "-o", "json");
        Assert.Equal([0, 1, 2, 0, 1, 2], acks.Select(a => JsonDocument.Parse(a).RootElement.GetProperty("partition").GetInt32()));
        Assert.Equal([0, 0, 0, 1, 1, 1], acks.Select(a => JsonDocument.Parse(a).RootElement.GetProperty("offset").GetInt32()));

        var keyed = await broker.RunOkAsync("pub", "spread", "x", "y", "--key", "k", "--partition-by-key", "-o", "json");
        var partitions = keyed.Select(a => JsonDocument.Parse(a).RootElement.GetProperty("partition").GetInt32()).Distinct().ToArray();
        var partition = Assert.Single(partitions); // one key, one partition

        Assert.Equal([$"{partition}\t2\tk\tx"], await broker.RunOkAsync("sub", "spread", "--partition", partition.ToString(CultureInfo.InvariantCulture), "--from", "offset:2", "-n", "1"));
    }

    [Fact]
    public async Task Expected_offset_is_enforced_with_optimistic_concurrency()
    {
        await broker.RunOkAsync("stream", "create", "ledger", "--subject", "ledger", "--optimistic-concurrency");

        Assert.Equal(["partition 0 offset 0", "partition 0 offset 1"], await broker.RunOkAsync("pub", "ledger", "a", "b", "--expected-offset", "0"));

        var (code, stale) = await broker.RunAsync("pub", "ledger", "c", "--expected-offset", "1");
        await using (stale)
        {
            Assert.Equal(1, code);
            Assert.Contains("offset", Assert.Single(stale.Stderr), StringComparison.Ordinal);
        }

        Assert.Equal(["partition 0 offset 2"], await broker.RunOkAsync("pub", "ledger", "c", "--expected-offset", "2"));
    }

    [Fact]
    public async Task A_subscription_follows_new_messages_until_ctrl_c_and_exits_0()
    {
        await broker.RunOkAsync("stream", "create", "live", "--subject", "live");
        await broker.RunOkAsync("pub", "live", "first");

        // From the latest message: seeing "first" proves the subscription is established.
        await using var sub = SluiceProcess.Start(["sub", "live", "--from", "latest", "--servers", broker.Servers], stdin: null);
        await sub.WaitForLineAsync("\tfirst");
        await broker.RunOkAsync("pub", "live", "second");
        await sub.WaitForLineAsync("\tsecond");

        await sub.InterruptAsync();
        Assert.Equal(0, await sub.WaitForExitAsync());
        Assert.Equal(["0\t0\t\tfirst", "0\t1\t\tsecond"], sub.Stdout);
        Assert.Empty(sub.Stderr);
    }

    [Fact]
    public async Task Stop_at_latest_on_an_empty_stream_prints_nothing_and_exits_0()
    {
        await broker.RunOkAsync("stream", "create", "empty", "--subject", "empty");
        Assert.Empty(await broker.RunOkAsync("sub", "empty", "--from", "earliest", "--stop-at-latest"));
    }

    [Fact]
    public async Task Stdin_bytes_that_are_not_UTF8_are_published_unchanged()
    {
        await broker.RunOkAsync("stream", "create", "bytes", "--subject", "bytes");
        byte[] first = [0x61, 0xFF, 0xFE, 0x00, 0x62];
        byte[] second = [0xC3, 0x28]; // a truncated two-byte sequence
        var (code, pub) = await broker.RunWithInputAsync([.. first, (byte)'\n', .. second, (byte)'\r', (byte)'\n', .. "tail"u8], "pub", "bytes");
        await using (pub)
        {
            Assert.True(code == 0, pub.Transcript());
        }

        var values = await ReadValuesAsync("bytes", 3);
        Assert.Equal(first, values[0]);
        Assert.Equal(second, values[1]); // a \r before the \n belongs to the line ending
        Assert.Equal("tail"u8.ToArray(), values[2]);
    }

    [Fact]
    public async Task Values_as_sub_prints_them_are_published_again_unchanged()
    {
        await broker.RunOkAsync("stream", "create", "origin", "--subject", "origin");
        await broker.RunOkAsync("stream", "create", "copy", "--subject", "copy");
        byte[][] values = [[0x00, 0x01, 0xFF, 0x0A], "plain text"u8.ToArray(), [], "tab\there"u8.ToArray(), [0xC3, 0x28]];

        // base64 lines in, as a script would write binary values.
        var base64 = string.Concat(values.Select(v => Convert.ToBase64String(v) + "\n"));
        var (code, pub) = await broker.RunWithInputAsync(base64, "pub", "origin", "--input", "base64");
        await using (pub)
        {
            Assert.True(code == 0, pub.Transcript());
        }

        Assert.Equal(values, await ReadValuesAsync("origin", values.Length));

        // sub's value column (printable text as is, the rest as base64:...) back in with --input sub.
        var printed = await broker.RunOkAsync("sub", "origin", "--from", "earliest", "--count", values.Length.ToString(CultureInfo.InvariantCulture));
        Assert.Contains(printed, l => l.EndsWith("\tbase64:" + Convert.ToBase64String(values[0]), StringComparison.Ordinal));
        var column = string.Concat(printed.Select(l => l.Split('\t')[3] + "\n"));
        var (copyCode, copy) = await broker.RunWithInputAsync(column, "pub", "copy", "--input", "sub");
        await using (copy)
        {
            Assert.True(copyCode == 0, copy.Transcript());
        }

        Assert.Equal(values, await ReadValuesAsync("copy", values.Length));

        // hex arguments, and a line that does not decode is a usage error.
        await broker.RunOkAsync("stream", "create", "hexed", "--subject", "hexed");
        await broker.RunOkAsync("pub", "hexed", "0001ff", "--input", "hex");
        Assert.Equal([[0x00, 0x01, 0xFF]], await ReadValuesAsync("hexed", 1));
        var (badCode, bad) = await broker.RunWithInputAsync("not base64!\n", "pub", "hexed", "--input", "base64");
        await using (bad)
        {
            Assert.Equal(2, badCode);
            Assert.Contains("stdin line 1 is not base64", Assert.Single(bad.Stderr), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_value_starting_with_a_dash_is_published_after_double_dash()
    {
        await broker.RunOkAsync("stream", "create", "dashes", "--subject", "dashes");
        var (code, pub) = await SluiceProcess.RunAsync("pub", "--servers", broker.Servers, "dashes", "--", "--not-a-flag");
        await using (pub)
        {
            Assert.True(code == 0, pub.Transcript());
            Assert.Equal(["partition 0 offset 0"], pub.Stdout);
        }

        Assert.Equal(["0\t0\t\t--not-a-flag"], await broker.RunOkAsync("sub", "dashes", "--from", "earliest", "--stop-at-latest"));
    }

    [Fact]
    public async Task Sub_reads_every_partition_and_prints_each_messages_partition()
    {
        await broker.RunOkAsync("stream", "create", "fanout", "--subject", "fanout", "--partitions", "3");
        await broker.RunOkAsync("pub", "fanout", "a", "b", "c", "d", "e", "f", "--round-robin");

        var lines = await broker.RunOkAsync("sub", "fanout", "--from", "earliest", "--stop-at-latest");
        Assert.Equal(["0\t0\t\ta", "0\t1\t\td", "1\t0\t\tb", "1\t1\t\te", "2\t0\t\tc", "2\t1\t\tf"], lines.Order(StringComparer.Ordinal));

        // --count counts over all partitions; --partition still reads one.
        Assert.Equal(4, (await broker.RunOkAsync("sub", "fanout", "--from", "earliest", "--count", "4")).Count);
        Assert.Equal(["1\t0\t\tb", "1\t1\t\te"], await broker.RunOkAsync("sub", "fanout", "-p", "1", "--from", "earliest", "--stop-at-latest"));
    }

    [Fact]
    public async Task Idle_ends_a_subscription_after_a_quiet_period_with_exit_0()
    {
        await broker.RunOkAsync("stream", "create", "quiet", "--subject", "quiet", "--partitions", "2");
        await broker.RunOkAsync("pub", "quiet", "x", "y", "--round-robin");

        // Without --idle (or a count) this subscription would follow the stream until Ctrl-C.
        var lines = await broker.RunOkAsync("sub", "quiet", "--from", "earliest", "--idle", "500ms");
        Assert.Equal(["0\t0\t\tx", "1\t0\t\ty"], lines.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_paused_partition_is_reported_with_the_flag_that_resumes_it()
    {
        await broker.RunOkAsync("stream", "create", "napping", "--subject", "napping");
        await broker.RunOkAsync("pub", "napping", "a");
        await broker.RunOkAsync("stream", "pause", "napping");

        var (code, sub) = await broker.RunAsync("sub", "napping", "--from", "earliest", "--stop-at-latest");
        await using (sub)
        {
            Assert.Equal(1, code);
            var line = Assert.Single(sub.Stderr);
            Assert.Contains("partition 0 is paused", line, StringComparison.Ordinal);
            Assert.Contains("--resume", line, StringComparison.Ordinal);
            Assert.DoesNotContain("resume=true", line, StringComparison.Ordinal);
        }

        Assert.Equal(["0\t0\t\ta"], await broker.RunOkAsync("sub", "napping", "--from", "earliest", "--stop-at-latest", "--resume"));
    }

    private async Task<byte[][]> ReadValuesAsync(string stream, int count)
    {
        var lines = await broker.RunOkAsync("sub", stream, "--from", "earliest", "--count", count.ToString(CultureInfo.InvariantCulture), "-o", "json");
        return [.. lines.Select(l =>
        {
            using var json = JsonDocument.Parse(l);
            var value = json.RootElement.GetProperty("value").GetString()!;
            return json.RootElement.GetProperty("encoding").GetString() == "base64" ? Convert.FromBase64String(value) : Encoding.UTF8.GetBytes(value);
        })];
    }
}
