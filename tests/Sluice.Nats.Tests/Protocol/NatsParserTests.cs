using System.Buffers;
using System.Text;
using Sluice.Nats.Protocol;

namespace Sluice.Nats.Tests.Protocol;

public class NatsParserTests
{
    private static List<ServerOp> ParseAll(string text, NatsParser? parser = null)
    {
        parser ??= new NatsParser();
        var buffer = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(text));
        var ops = new List<ServerOp>();
        while (parser.TryParse(ref buffer, out var op))
        {
            ops.Add(op);
        }

        Assert.True(buffer.IsEmpty, $"{buffer.Length} bytes left unparsed");
        return ops;
    }

    private static bool NeedsMore(string text)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(text));
        var length = buffer.Length;
        var parsed = new NatsParser().TryParse(ref buffer, out _);
        Assert.Equal(length, buffer.Length);
        return !parsed;
    }

    [Fact]
    public void Msg_with_and_without_reply_parses_subject_sid_reply_and_payload()
    {
        var ops = ParseAll("MSG foo.bar 9 5\r\nhello\r\nMSG foo 10 _INBOX.x 0\r\n\r\n");
        Assert.Equal(2, ops.Count);
        Assert.Equal(("foo.bar", 9L, (string?)null, "hello"), (ops[0].Subject, ops[0].Sid, ops[0].ReplyTo, Encoding.UTF8.GetString(ops[0].Payload!)));
        Assert.Equal(("foo", 10L, "_INBOX.x", 0), (ops[1].Subject, ops[1].Sid, ops[1].ReplyTo, ops[1].Payload!.Length));
    }

    [Fact]
    public void Hmsg_parses_headers_status_and_payload()
    {
        const string headers = "NATS/1.0 503 No Responders\r\nName: v1\r\nName: v2\r\nOther:x\r\n\r\n";
        var op = Assert.Single(ParseAll($"HMSG a 1 r {headers.Length} {headers.Length + 2}\r\n{headers}hi\r\n"));
        Assert.Equal(503, op.Headers!.StatusCode);
        Assert.Equal("No Responders", op.Headers.StatusDescription);
        Assert.True(op.Headers.TryGetValues("Name", out var values));
        Assert.Equal(["v1", "v2"], values);
        Assert.Equal("x", op.Headers["Other"]);
        Assert.Equal("hi", Encoding.UTF8.GetString(op.Payload!));
        Assert.Equal("r", op.ReplyTo);
    }

    [Fact]
    public void Control_ops_parse_case_insensitively()
    {
        var ops = ParseAll("PING\r\npong\r\n+OK\r\n-ERR 'Authorization Violation'\r\nINFO {\"max_payload\":1024}\r\n");
        Assert.Equal([ServerOpKind.Ping, ServerOpKind.Pong, ServerOpKind.Ok, ServerOpKind.Err, ServerOpKind.Info], ops.Select(o => o.Kind));
        Assert.Equal("Authorization Violation", ops[3].Text);
        Assert.Equal(1024, ServerConnectorInfo(ops[4].Text!).MaxPayload);
    }

    [Theory]
    [InlineData("")]
    [InlineData("PIN")]
    [InlineData("PING\r")]
    [InlineData("MSG foo 1 5\r\nhel")]
    [InlineData("MSG foo 1 5\r\nhello\r")]
    [InlineData("HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nh")]
    public void Incomplete_input_needs_more_data_and_consumes_nothing(string text) => Assert.True(NeedsMore(text));

    [Theory]
    [InlineData("FOO\r\n")]
    [InlineData("PING x\r\n")]
    [InlineData("PING\n")]
    [InlineData("MSG foo\r\n")]
    [InlineData("MSG foo bar 1\r\nx\r\n")]
    [InlineData("MSG foo 1 -1\r\n")]
    [InlineData("MSG foo 1 99999999999999999999999\r\n")]
    [InlineData("MSG foo 1 3\r\nabcde")]
    [InlineData("MSG a b c d e f g\r\n")]
    [InlineData("HMSG foo 1 20 10\r\n")]
    [InlineData("HMSG foo 1 5 5\r\nNATS/\r\n")]
    [InlineData("HMSG foo 1 12 12\r\nHTTP/1.0\r\n\r\n\r\n")]
    [InlineData("HMSG foo 1 17 17\r\nNATS/1.0\r\nbad\r\n\r\n\r\n")]
    [InlineData("HMSG foo 1 16 16\r\nNATS/1.0 50x\r\n\r\n\r\n")]
    [InlineData("INFO\r\n")]
    public void Malformed_input_is_a_protocol_error(string text)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(text));
        Assert.Throws<NatsProtocolException>(() => new NatsParser().TryParse(ref buffer, out _));
    }

    [Fact]
    public void Control_line_longer_than_the_limit_is_rejected_before_it_ends()
    {
        var parser = new NatsParser(maxControlLine: 64);
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("INFO " + new string('x', 100)));
        Assert.Throws<NatsProtocolException>(() => parser.TryParse(ref buffer, out _));
    }

    [Fact]
    public void Payload_larger_than_the_limit_is_rejected_without_waiting_for_it()
    {
        var parser = new NatsParser(maxPayload: 1024);
        var buffer = new ReadOnlySequence<byte>("MSG foo 1 1025\r\n"u8.ToArray());
        Assert.Throws<NatsProtocolException>(() => parser.TryParse(ref buffer, out _));
    }

    [Fact]
    public void Writer_output_for_hpub_is_what_the_parser_reads_back_as_hmsg()
    {
        var headers = new NatsHeaders { ["Nats-Msg-Id"] = "abc" };
        headers.Add("X", "1");
        headers.Add("X", "2");
        var writer = new ArrayBufferWriter<byte>();
        var headerLength = NatsProtocolWriter.HeaderLength(headers);
        NatsProtocolWriter.WritePublish(writer, "orders.new", "_INBOX.1", headers, headerLength, "data"u8);
        var text = Encoding.UTF8.GetString(writer.WrittenSpan);
        Assert.StartsWith($"HPUB orders.new _INBOX.1 {headerLength} {headerLength + 4}\r\nNATS/1.0\r\nNats-Msg-Id: abc\r\nX: 1\r\nX: 2\r\n\r\ndata\r\n", text, StringComparison.Ordinal);

        // The server turns HPUB into HMSG with a sid; the block is byte-identical.
        var op = Assert.Single(ParseAll(text.Replace("HPUB orders.new", "HMSG orders.new 7", StringComparison.Ordinal)));
        Assert.Equal("abc", op.Headers!["Nats-Msg-Id"]);
        Assert.True(op.Headers.TryGetValues("X", out var xs));
        Assert.Equal(["1", "2"], xs);
    }

    [Fact]
    public void Writer_formats_pub_sub_and_unsub()
    {
        var writer = new ArrayBufferWriter<byte>();
        NatsProtocolWriter.WritePublish(writer, "foo", null, null, 0, "hi"u8);
        NatsProtocolWriter.WriteSubscribe(writer, 3, "foo.*", "workers");
        NatsProtocolWriter.WriteSubscribe(writer, 4, "bar", null);
        NatsProtocolWriter.WriteUnsubscribe(writer, 3, 10);
        NatsProtocolWriter.WriteUnsubscribe(writer, 4, null);
        Assert.Equal("PUB foo 2\r\nhi\r\nSUB foo.* workers 3\r\nSUB bar 4\r\nUNSUB 3 10\r\nUNSUB 4\r\n", Encoding.UTF8.GetString(writer.WrittenSpan));
    }

    private static NatsServerInfo ServerConnectorInfo(string json) => Sluice.Nats.Connection.ServerConnector.ParseInfo(json);
}
