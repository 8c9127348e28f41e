using Sluice.Protocol.Api;

namespace Sluice.Server.Streams;

/// <summary>
/// The admin calls of the API (create, delete, pause, readonly). A single node runs them on its
/// <see cref="Broker"/>; a cluster member passes them to the controller (<c>Cluster/ClusterNode</c>).
/// </summary>
internal interface IStreamAdmin
{
    Task CreateStreamAsync(CreateStreamRequest request, CancellationToken cancellationToken);

    Task DeleteStreamAsync(string name, CancellationToken cancellationToken);

    Task PauseAsync(string name, IReadOnlyList<int> partitions, bool resumeAll, CancellationToken cancellationToken);

    Task SetReadonlyAsync(string name, IReadOnlyList<int> partitions, bool value, CancellationToken cancellationToken);
}

/// <summary>In a cluster: hands a publish for a partition another broker leads to that leader.</summary>
internal interface IPublishForwarder
{
    /// <summary>Sends the message to the partition's leader and delivers its ack; false when this broker leads it (append here).</summary>
    ValueTask<bool> ForwardAsync(Partition partition, PublishItem item, CancellationToken cancellationToken);

    /// <summary>Resumes a paused partition through the controller (a subscribe with resume, or a publish, reached it).</summary>
    Task ResumeAsync(Partition partition, CancellationToken cancellationToken);

    /// <summary>Pauses a partition its leader found idle for the stream's autoPauseTime, through the controller.</summary>
    Task AutoPauseAsync(Partition partition, CancellationToken cancellationToken);
}
