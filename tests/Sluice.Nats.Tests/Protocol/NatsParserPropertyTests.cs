using System.Buffers;
using FsCheck;
using FsCheck.Fluent;
using Sluice.Nats.Protocol;

namespace Sluice.Nats.Tests.Protocol;

public class NatsParserPropertyTests
{
    private static readonly Config Config = Config.QuickThrowOnFailure.WithMaxTest(300);

    [Fact]
    public void Any_split_of_a_valid_stream_parses_to_the_same_ops()
    {
        Prop.ForAll<int, int, int[]>((seed, opCount, splits) =>
        {
            var (bytes, expected) = ServerStream.Generate(new Random(seed), 1 + Math.Abs(opCount % 25));
            var chunks = splits.Select(s => 1 + Math.Abs(s % 64)).ToArray();
            var parsed = ServerStream.ParseInChunks(new NatsParser(), bytes, chunks);
            return parsed.SequenceEqual(expected);
        }).Check(Config);
    }

    [Fact]
    public void Byte_at_a_time_parses_the_same_as_all_at_once()
    {
        Prop.ForAll<int>(seed =>
        {
            var (bytes, expected) = ServerStream.Generate(new Random(seed), 10);
            return ServerStream.ParseInChunks(new NatsParser(), bytes, [1]).SequenceEqual(expected)
                && ServerStream.ParseInChunks(new NatsParser(), bytes, []).SequenceEqual(expected);
        }).Check(Config);
    }

    [Fact]
    public void Corrupted_stream_gives_ops_or_a_protocol_error_never_a_crash_or_a_hang()
    {
        Prop.ForAll<int, int[]>((seed, edits) =>
        {
            var random = new Random(seed);
            var (bytes, _) = ServerStream.Generate(random, 8);
            var corrupted = Mutations.Apply(random, bytes, edits.Length % 8 + 1);
            ParserRun.Run(new NatsParser(maxControlLine: 1024, maxPayload: 4096), corrupted);
            return true;
        }).Check(Config);
    }
}

internal static class Mutations
{
    public static byte[] Apply(Random random, byte[] bytes, int count)
    {
        var list = bytes.ToList();
        for (var i = 0; i < count; i++)
        {
            var position = list.Count == 0 ? 0 : random.Next(list.Count);
            switch (random.Next(5))
            {
                case 0 when list.Count > 0:
                    list[position] = (byte)random.Next(256);
                    break;
                case 1 when list.Count > 0:
                    list.RemoveAt(position);
                    break;
                case 2:
                    list.Insert(position, Interesting[random.Next(Interesting.Length)]);
                    break;
                case 3 when list.Count > 0:
                    list[position] = (byte)(list[position] ^ (1 << random.Next(8)));
                    break;
                default:
                    list.InsertRange(position, Tokens[random.Next(Tokens.Length)]);
                    break;
            }
        }

        return [.. list];
    }

    private static readonly byte[] Interesting = "\r\n \t0123456789:'{".Select(c => (byte)c).ToArray();

    private static readonly byte[][] Tokens =
    [
        "\r\n"u8.ToArray(), "MSG "u8.ToArray(), "HMSG "u8.ToArray(), "NATS/1.0"u8.ToArray(), "99999999"u8.ToArray(),
        "18446744073709551616"u8.ToArray(), "-1"u8.ToArray(), " 0 "u8.ToArray(), "\r\n\r\n"u8.ToArray(), "PING\r\n"u8.ToArray(),
    ];
}

/// <summary>Runs a parser over a whole input; only <see cref="NatsProtocolException"/> may escape, and every op must consume bytes.</summary>
internal static class ParserRun
{
    public static (int Ops, bool ProtocolError) Run(NatsParser parser, byte[] input)
    {
        var buffer = new ReadOnlySequence<byte>(input);
        var ops = 0;
        try
        {
            while (true)
            {
                var before = buffer.Length;
                if (!parser.TryParse(ref buffer, out _))
                {
                    if (buffer.Length != before)
                    {
                        throw new InvalidOperationException("Parser consumed bytes while asking for more data.");
                    }

                    return (ops, false);
                }

                if (buffer.Length >= before)
                {
                    throw new InvalidOperationException("Parser returned an op without consuming bytes (would loop forever).");
                }

                ops++;
            }
        }
        catch (NatsProtocolException)
        {
            return (ops, true);
        }
    }
}
