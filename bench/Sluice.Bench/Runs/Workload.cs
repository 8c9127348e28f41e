using System.Text;

namespace Sluice.Bench.Runs;

/// <summary>One message of the workload: key, payload and the partition it goes to.</summary>
public readonly record struct BenchMessage(ReadOnlyMemory<byte> Key, ReadOnlyMemory<byte> Value, int Partition);

/// <summary>
/// The messages of a producer run, generated before the clock starts: keys <c>key-&lt;i&gt;</c>
/// and random payloads from a fixed seed (the same bytes for every target). Payloads cycle through
/// a pool of distinct random buffers rather than one per message, so a million 256-byte messages
/// do not need 256 MB of client memory on a small machine; keys are all distinct.
/// </summary>
public sealed class Workload
{
    // 65,536 distinct payloads: far more than any window in flight, 16 MiB at 256 bytes.
    private const int PayloadPoolSize = 65_536;

    private readonly byte[] _payloads;
    private readonly byte[] _keys;
    private readonly int[] _keyStarts;
    private readonly int _poolSize;
    private readonly int _partitions;

    private Workload(long count, int messageSize, int partitions, int seed)
    {
        Count = count;
        MessageSize = messageSize;
        _partitions = partitions;
        _poolSize = (int)Math.Min(count, PayloadPoolSize);
        _payloads = new byte[(long)_poolSize * messageSize];
        new Random(seed).NextBytes(_payloads);

        _keyStarts = new int[count + 1];
        using var keys = new MemoryStream();
        Span<byte> scratch = stackalloc byte[32];
        for (long i = 0; i < count; i++)
        {
            _keyStarts[i] = (int)keys.Length;
            var written = Encoding.ASCII.GetBytes($"key-{i}", scratch);
            keys.Write(scratch[..written]);
        }

        _keyStarts[count] = (int)keys.Length;
        _keys = keys.ToArray();
    }

    /// <summary>Messages in the workload.</summary>
    public long Count { get; }

    /// <summary>Payload bytes per message.</summary>
    public int MessageSize { get; }

    /// <summary>Generates <paramref name="count"/> messages spread round-robin over <paramref name="partitions"/>.</summary>
    public static Workload Generate(long count, int messageSize, int partitions, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, 100_000_000);
        ArgumentOutOfRangeException.ThrowIfNegative(messageSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        return new Workload(count, messageSize, partitions, seed);
    }

    /// <summary>Message <paramref name="index"/> (0-based).</summary>
    public BenchMessage this[long index]
    {
        get
        {
            var start = _keyStarts[index];
            var key = _keys.AsMemory(start, _keyStarts[index + 1] - start);
            var value = _payloads.AsMemory((int)(index % _poolSize) * MessageSize, MessageSize);
            return new BenchMessage(key, value, (int)(index % _partitions));
        }
    }
}
