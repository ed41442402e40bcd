# salve-script: exchange_maintenance
# Put this Exchange server into maintenance mode or take it out again, DAG-aware, in the order of
# Microsoft's DAG maintenance procedure (contract: MaintenanceRequest -> MaintenanceAnswer).
#
# Enter: HubTransport Draining + transport restart; UMCallRouter Draining (2016 with UM);
# for a DAG member StartDagServerMaintenance.ps1 -PauseClusterNode (blocks activation, pauses
# the cluster node, moves active databases away); Redirect-Message to another server;
# ServerWideOffline Inactive. The activation policy found beforehand is answered as
# previous_activation_policy so the controller can restore it on leave.
# Leave: ServerWideOffline Active; UMCallRouter Active; StopDagServerMaintenance.ps1;
# HubTransport Active + transport restart; the saved activation policy restored (Stop... resets
# it to Unrestricted).
# Gates are evaluated afterwards and decide success.

$requester = 'Maintenance'
$server = $env:COMPUTERNAME
$changed = $false
$reason = $null
$moved = New-Object System.Collections.Generic.List[object]
$previousPolicy = $null

# Both functions write their items one by one; callers collect them with @( ).
function Get-SalveComponents {
    Get-ServerComponentState -Identity $server | ForEach-Object {
        $latest = @($_.LocalStates) + @($_.RemoteStates) | Sort-Object Timestamp -Descending
        [ordered]@{
            component  = [string] $_.Component
            state      = [string] $_.State
            requesters = @($latest | Where-Object { [string] $_.State -ne 'Active' } |
                    ForEach-Object { [string] $_.Requester } | Sort-Object -Unique)
        }
    }
}

function Get-SalveCopies {
    Get-MailboxDatabaseCopyStatus -Server $server -ErrorAction SilentlyContinue
}

function Get-SalveClusterNode {
    try { return [string] (Get-ClusterNode -Name $server -ErrorAction Stop).State } catch { return $null }
}

function Write-SalveAnswer([bool] $Success) {
    $mbx = if ($isDagMember) { Get-MailboxServer -Identity $server } else { $null }
    $components = @(Get-SalveComponents)
    $copies = @(Get-SalveCopies)
    $node = if ($isDagMember) { Get-SalveClusterNode } else { $null }
    $active = @($components | Where-Object { $_.state -eq 'Active' } | ForEach-Object { $_.component })
    $byDesign = @('ForwardSyncDaemon', 'ProvisioningRps')
    $gates = [ordered]@{
        no_active_copies         = (@($copies | Where-Object { [string] $_.Status -eq 'Mounted' }).Count -eq 0)
        components_as_expected   = $false
        cluster_node_as_expected = $true
        copies_healthy           = (@($copies | Where-Object { [string] $_.Status -notin @('Mounted', 'Healthy') }).Count -eq 0)
    }
    if ($SalveArgs.action -eq 'enter') {
        $gates.components_as_expected = (@($active | Where-Object { $_ -notin @('Monitoring', 'RecoveryActionsEnabled') }).Count -eq 0)
        if ($isDagMember) { $gates.cluster_node_as_expected = ($node -eq 'Paused') }
    } else {
        $gates.components_as_expected = (@($components | Where-Object { $_.state -ne 'Active' -and $_.component -notin $byDesign }).Count -eq 0)
        if ($isDagMember) { $gates.cluster_node_as_expected = ($node -eq 'Up') }
    }
    if ($Success) {
        $failedGates = @($gates.Keys | Where-Object {
                -not $gates[$_] -and ($SalveArgs.action -eq 'enter' -or $_ -ne 'no_active_copies')
            })
        if ($SalveArgs.action -eq 'enter') { $failedGates = @($failedGates | Where-Object { $_ -ne 'copies_healthy' }) }
        if ($failedGates.Count -gt 0) {
            $Success = $false
            $script:reason = 'gates not met after ' + $SalveArgs.action + ': ' + ($failedGates -join ', ')
        }
    }
    $answer = [ordered]@{
        changed                    = [bool] $changed
        success                    = [bool] $Success
        reason                     = $script:reason
        previous_activation_policy = $previousPolicy
        activation_policy          = if ($mbx) { [string] $mbx.DatabaseCopyAutoActivationPolicy } else { $null }
        component_states           = @($components)
        moved_databases            = @($moved.ToArray())
        cluster_node_state         = $node
        gates                      = $gates
    }
    Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
    if (-not $Success) { exit 1 }
}

try {
    Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn -ErrorAction Stop
} catch {
    [Console]::Error.WriteLine("the Exchange management snap-in could not be loaded: $($_.Exception.Message)")
    exit 1
}
$installPath = (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup' -Name 'MsiInstallPath').MsiInstallPath
$exScripts = Join-Path $installPath 'Scripts'
$exchangeServer = Get-ExchangeServer -Identity $server
$isDagMember = $false
if ($exchangeServer.IsMailboxServer) {
    $mbxBefore = Get-MailboxServer -Identity $server
    $isDagMember = [bool] $mbxBefore.DatabaseAvailabilityGroup
    if ($isDagMember) { $previousPolicy = [string] $mbxBefore.DatabaseCopyAutoActivationPolicy }
}
$usesUm = ($exchangeServer.AdminDisplayVersion.Minor -eq 1) -and ([string] $exchangeServer.ServerRole -match 'UnifiedMessaging|Mailbox') -and
    (Get-Service -Name 'MSExchangeUMCR' -ErrorAction SilentlyContinue)

try {
    if ($SalveArgs.action -eq 'enter') {
        $swo = Get-ServerComponentState -Identity $server -Component ServerWideOffline
        if ([string] $swo.State -eq 'Inactive' -and @($swo.LocalStates | Where-Object { [string] $_.Requester -eq $requester }).Count -gt 0) {
            Write-Output "$server is already in maintenance mode"
        } else {
            $activeBefore = @(Get-SalveCopies | Where-Object { [string] $_.Status -eq 'Mounted' } | ForEach-Object { [string] $_.DatabaseName })
            Write-Output 'Set-ServerComponentState HubTransport Draining; restarting MSExchangeTransport'
            Set-ServerComponentState -Identity $server -Component HubTransport -State Draining -Requester $requester
            $changed = $true
            Restart-Service -Name MSExchangeTransport
            if ($usesUm) {
                Set-ServerComponentState -Identity $server -Component UMCallRouter -State Draining -Requester $requester
            }
            if ($isDagMember) {
                Write-Output 'StartDagServerMaintenance.ps1 -PauseClusterNode (this can take a while, silently)'
                # Microsoft's script inherits the caller's preference: under the prelude's 'Stop'
                # its first non-terminating error would end it half way. Its own default here.
                & {
                    $ErrorActionPreference = 'Continue'
                    & (Join-Path $exScripts 'StartDagServerMaintenance.ps1') -ServerName $server -MoveComment $requester -PauseClusterNode
                }
                foreach ($db in $activeBefore) {
                    $now = [string] (Get-MailboxDatabase -Identity $db -Status).MountedOnServer
                    $moved.Add([ordered]@{ database = $db; from = $server; to = $now })
                    Write-Output "Moved $db to $now"
                }
            }
            $target = $SalveArgs.redirect_target
            if (-not $target) {
                $peer = Get-ExchangeServer | Where-Object {
                    $_.Name -ne $server -and $_.IsHubTransportServer -and $_.AdminDisplayVersion.Major -eq $exchangeServer.AdminDisplayVersion.Major
                } | Select-Object -First 1
                if ($peer) { $target = [string] $peer.Fqdn }
            }
            if ($target) {
                Write-Output "Redirect-Message -Target $target"
                Redirect-Message -Server $server -Target $target -Confirm:$false
            } else {
                Write-Output 'No other transport server found: queued mail stays on this server'
            }
            Write-Output 'Set-ServerComponentState ServerWideOffline Inactive'
            Set-ServerComponentState -Identity $server -Component ServerWideOffline -State Inactive -Requester $requester
        }
    } elseif ($SalveArgs.action -eq 'leave') {
        Write-Output 'Set-ServerComponentState ServerWideOffline Active'
        Set-ServerComponentState -Identity $server -Component ServerWideOffline -State Active -Requester $requester
        if ($usesUm) {
            Set-ServerComponentState -Identity $server -Component UMCallRouter -State Active -Requester $requester
        }
        if ($isDagMember) {
            Write-Output 'StopDagServerMaintenance.ps1'
            & {
                $ErrorActionPreference = 'Continue'
                & (Join-Path $exScripts 'StopDagServerMaintenance.ps1') -ServerName $server
            }
        }
        Write-Output 'Set-ServerComponentState HubTransport Active; restarting MSExchangeTransport'
        Set-ServerComponentState -Identity $server -Component HubTransport -State Active -Requester $requester
        Restart-Service -Name MSExchangeTransport
        if ($isDagMember -and $SalveArgs.saved_policy) {
            Write-Output "Restoring DatabaseCopyAutoActivationPolicy $($SalveArgs.saved_policy)"
            Set-MailboxServer -Identity $server -DatabaseCopyAutoActivationPolicy $SalveArgs.saved_policy
        }
        $changed = $true
    } else {
        throw "action must be 'enter' or 'leave', got '$($SalveArgs.action)'"
    }
} catch {
    $reason = $_.Exception.Message
    [Console]::Error.WriteLine($reason)
    Write-SalveAnswer $false
}
Write-SalveAnswer $true
